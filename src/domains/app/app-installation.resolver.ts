import { Arg, Authorized, Ctx, ID, Mutation, Query, Resolver } from 'type-graphql';
import { requireUser } from '../../auth/authorization';
import type { GraphQLContext } from '../../contracts/context';
import { InstallAppInput } from './app-installation.input';
import { AppInstallation } from './app-installation.type';

@Resolver(() => AppInstallation)
export class AppInstallationResolver {
  @Authorized()
  @Query(() => [AppInstallation], { description: "Apps currently on a device; NOT_FOUND when it is not the caller's" })
  appInstallations(@Arg('deviceId', () => ID) deviceId: string, @Ctx() context: GraphQLContext): Promise<AppInstallation[]> {
    return context.services.apps.forDevice(requireUser(context), deviceId);
  }

  @Authorized()
  @Mutation(() => AppInstallation, {
    description: 'The device owner or an administrator; not on a DELETED, CREATING or ERROR device; emits app.installed',
  })
  installApp(
    @Arg('deviceId', () => ID) deviceId: string,
    @Arg('input', () => InstallAppInput) input: InstallAppInput,
    @Ctx() context: GraphQLContext,
  ): Promise<AppInstallation> {
    return context.services.apps.install(requireUser(context), deviceId, input);
  }

  @Authorized()
  @Mutation(() => AppInstallation, { description: 'INSTALLED or FAILED -> UNINSTALLED; emits app.uninstalled' })
  uninstallApp(@Arg('installationId', () => ID) installationId: string, @Ctx() context: GraphQLContext): Promise<AppInstallation> {
    return context.services.apps.uninstall(requireUser(context), installationId);
  }
}
