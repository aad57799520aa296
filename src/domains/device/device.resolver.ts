import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import { requireUser, resolveTargetUser } from '../../auth/authorization';
import type { GraphQLContext } from '../../contracts/context';
import { AppInstallation } from '../app/app-installation.type';
import { BatchLoader, loaderFor } from '../shared/batch-loader';
import { pageRequest, type Connection } from '../shared/connection';
import { CreateDeviceInput, DevicesArgs } from './device.input';
import { Device, DeviceConnection } from './device.type';

/**
 * Users read and change their own devices; administrators anyone's. Another user's device reads
 * as NOT_FOUND (ids cannot be probed); another user's `userId` argument is FORBIDDEN.
 */
@Resolver(() => Device)
export class DeviceResolver {
  @Authorized()
  @Query(() => DeviceConnection, { description: "A user's devices, newest first" })
  devices(@Args(() => DevicesArgs) args: DevicesArgs, @Ctx() context: GraphQLContext): Promise<Connection<Device>> {
    const page = pageRequest(args.first, args.after);
    const userId = resolveTargetUser(context, args.userId, { allowAll: true });
    return context.services.devices.list({ userId, status: args.status }, page);
  }

  @Authorized()
  @Query(() => Device, { description: "One device; NOT_FOUND when it is not the caller's (administrators: anyone's)" })
  device(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Device> {
    return context.services.devices.get(requireUser(context), id);
  }

  @FieldResolver(() => [AppInstallation], { description: 'Apps currently on the device (batched per request)' })
  installations(@Root() device: Device, @Ctx() context: GraphQLContext): Promise<AppInstallation[]> {
    const { apps } = context.services;
    const loader = loaderFor(
      context,
      'installationsByDevice',
      () =>
        new BatchLoader(
          (ids: readonly string[]) => apps.byDevices(ids),
          () => [],
        ),
    );
    return loader.load(device.id);
  }

  @Authorized()
  @Mutation(() => Device, {
    description: 'Creates a device (IDLE) for the caller, or for userId (administrators); emits device.created',
  })
  createDevice(
    @Arg('input', () => CreateDeviceInput) input: CreateDeviceInput,
    @Arg('userId', () => ID, { nullable: true }) userId: string | null | undefined,
    @Ctx() context: GraphQLContext,
  ): Promise<Device> {
    const owner = resolveTargetUser(context, userId, { allowAll: false }) as string;
    return context.services.devices.create(requireUser(context), owner, input);
  }

  @Authorized()
  @Mutation(() => Device, { description: 'IDLE, ALLOCATED, STOPPED, PAUSED or ERROR -> RUNNING; emits device.started' })
  startDevice(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Device> {
    return context.services.devices.start(requireUser(context), id);
  }

  @Authorized()
  @Mutation(() => Device, { description: 'RUNNING, PAUSED or ALLOCATED -> STOPPED; emits device.stopped' })
  stopDevice(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Device> {
    return context.services.devices.stop(requireUser(context), id);
  }

  @Authorized()
  @Mutation(() => Device, { description: 'Any status but DELETED -> DELETED; emits device.deleted' })
  deleteDevice(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Device> {
    return context.services.devices.remove(requireUser(context), id);
  }
}
