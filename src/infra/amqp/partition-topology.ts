/**
 * Names of the partitioned ingest's queues and exchange, all derived from `AMQP_QUEUE` so one
 * variable names a deployment (docs/cluster.md):
 *
 *   cloudphone.events (topic) --> <queue>.router (single active consumer: the router)
 *   router --> <queue>.partitions (x-consistent-hash on the partition key header)
 *          --> <queue>.p0 .. <queue>.p<N-1> (each single active consumer; every instance consumes all)
 *
 * `<queue>` itself is the queue of the unpartitioned topology: drained by the router, then deleted.
 */
export interface PartitionTopology {
  /** The router queue, bound to the platform's exchange. */
  readonly router: string;
  /** The consistent-hash exchange the router republishes to (and publishers taking the shortcut). */
  readonly exchange: string;
  /** The partition queues, in order. */
  readonly partitions: readonly string[];
  /** The shared queue of the unpartitioned topology, drained during the migration. */
  readonly legacy: string;
}

export function partitionTopology(queue: string, partitions: number): PartitionTopology {
  return {
    router: `${queue}.router`,
    exchange: `${queue}.partitions`,
    partitions: Array.from({ length: partitions }, (_, i) => `${queue}.p${i}`),
    legacy: queue,
  };
}

/**
 * Points on the hash ring per partition queue (the binding key is its weight): with one point
 * per queue the ring's arcs, and so the partitions' shares of users, differ several-fold.
 */
export const PARTITION_WEIGHT = '20';
