/**
 * Announcements (the platform's `sendToRoom` and `broadcast`): written to the outbox like every
 * mutation, relayed to the exchange as `notification.announcement`, and turned by the bridge into
 * one publish per audience it names (contracts/events.ts `announcementDrafts`).
 */
import type { AuthUser } from '../../auth/auth-user';
import { BadUserInputError } from '../../contracts/errors';
import { scrubText } from '../../contracts/events';
import { ANNOUNCEMENT_ROUTING_KEY } from '../../contracts/routing';
import type { PrismaClient } from '../../generated/prisma/client';
import { newEventRef, TRANSACTION_OPTIONS, writeOutbox } from '../shared/outbox';
import type { AnnouncementInput } from './announcement.input';
import type { Announcement } from './announcement.type';

declare module '../../contracts/context' {
  interface DomainServices {
    readonly announcements: AnnouncementService;
  }
}

export interface AnnouncementService {
  broadcast(actor: AuthUser, input: AnnouncementInput): Promise<Announcement>;
}

export function createAnnouncementService(deps: { prisma: PrismaClient; onOutboxWrite: () => void }): AnnouncementService {
  return {
    async broadcast(actor, input) {
      const { audience } = input;
      const userIds = [...new Set(audience.userIds ?? [])];
      if (!audience.all && !audience.tenantId && !audience.role && userIds.length === 0) {
        throw new BadUserInputError('audience names nobody: set all, tenantId, role or userIds', { field: 'audience' });
      }
      if (scrubText(input.title).trim() === '' || scrubText(input.message).trim() === '') {
        throw new BadUserInputError('title and message must not be empty', { field: 'message' });
      }
      const ref = newEventRef();
      await deps.prisma.$transaction(async (tx) => {
        await writeOutbox(tx, ANNOUNCEMENT_ROUTING_KEY, ref, {
          title: input.title,
          message: input.message,
          severity: (input.severity ?? 'INFO').toLowerCase(),
          ...(input.category ? { category: input.category } : {}),
          audience: {
            ...(audience.all ? { all: true } : {}),
            ...(audience.tenantId ? { tenantId: audience.tenantId } : {}),
            ...(audience.role ? { role: audience.role } : {}),
            ...(userIds.length > 0 ? { userIds } : {}),
          },
          sentBy: actor.id,
        });
      }, TRANSACTION_OPTIONS);
      deps.onOutboxWrite();
      return { eventId: ref.eventId, createdAt: ref.at };
    },
  };
}
