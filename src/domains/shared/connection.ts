/**
 * Cursor connections (Relay style): `edges { cursor node }`, `pageInfo { hasNextPage endCursor }`.
 * Pages are ordered newest first by (createdAt, id); a cursor is an opaque base64url token of
 * that pair, so a page never skips or repeats a row when rows are added meanwhile.
 */
import { ClassType, Field, ObjectType } from 'type-graphql';
import { BadUserInputError } from '../../contracts/errors';

/** `first` when the caller does not say. */
export const DEFAULT_PAGE_SIZE = 20;
/** Largest `first` accepted; more is BAD_USER_INPUT. */
export const MAX_PAGE_SIZE = 100;

@ObjectType({ description: 'Where a page ends and whether another follows' })
export class PageInfo {
  @Field() hasNextPage!: boolean;
  @Field(() => String, { nullable: true, description: 'Pass as `after` for the next page' }) endCursor!: string | null;
}

export interface Edge<T> {
  cursor: string;
  node: T;
}
export interface Connection<T> {
  edges: Edge<T>[];
  pageInfo: PageInfo;
}

/** Declares `<Name>Edge` and `<Name>Connection` object types for a node type. */
export function connectionTypes<T extends object>(name: string, node: ClassType<T>) {
  @ObjectType(`${name}Edge`)
  class EdgeType {
    @Field() cursor!: string;
    @Field(() => node) node!: T;
  }
  @ObjectType(`${name}Connection`, { description: `A page of ${name} items, newest first` })
  class ConnectionType {
    @Field(() => [EdgeType]) edges!: EdgeType[];
    @Field(() => PageInfo) pageInfo!: PageInfo;
  }
  return { EdgeType, ConnectionType };
}

export interface PagePosition {
  readonly createdAt: Date;
  readonly id: string;
}

export interface PageRequest {
  readonly take: number;
  readonly after?: PagePosition;
}

export function encodeCursor(row: PagePosition): string {
  return Buffer.from(JSON.stringify([row.createdAt.toISOString(), row.id])).toString('base64url');
}

function decodeCursor(cursor: string): PagePosition {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string') {
      const createdAt = new Date(value[0]);
      const year = createdAt.getUTCFullYear();
      // What PostgreSQL can compare: a timestamp within years 1-9999, an id of text without NUL.
      const id = value[1];
      if (!Number.isNaN(createdAt.getTime()) && year >= 1 && year <= 9999 && id.length <= 200 && !id.includes('\u0000')) {
        return { createdAt, id };
      }
    }
  } catch {
    // fall through
  }
  throw new BadUserInputError('after is not a cursor this API returned', { field: 'after' });
}

/** Validates `first` and `after`. */
export function pageRequest(first: number | null | undefined, after: string | null | undefined): PageRequest {
  const take = first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(take) || take < 1 || take > MAX_PAGE_SIZE) {
    throw new BadUserInputError(`first must be between 1 and ${MAX_PAGE_SIZE}`, { field: 'first' });
  }
  return { take, after: after === null || after === undefined ? undefined : decodeCursor(after) };
}

/** Prisma `where` for "strictly after this position" in (createdAt desc, id desc) order. */
export function afterPosition(after: PagePosition | undefined) {
  if (!after) return {};
  return {
    OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }],
  };
}

export const PAGE_ORDER = [{ createdAt: 'desc' as const }, { id: 'desc' as const }];

/** Builds the connection from `take + 1` rows fetched in page order. */
export function toConnection<R extends PagePosition, T>(rows: R[], take: number, view: (row: R) => T): Connection<T> {
  const page = rows.slice(0, take);
  const edges = page.map((row) => ({ cursor: encodeCursor(row), node: view(row) }));
  return {
    edges,
    pageInfo: { hasNextPage: rows.length > take, endCursor: edges.at(-1)?.cursor ?? null },
  };
}
