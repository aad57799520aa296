/**
 * A map that holds its first entry in two fields and makes a `Map` only from the second. A
 * connection's live operations are usually one or two: an empty `Map` is ≈180 bytes, more than
 * the operation itself (docs/decisions/0605). Iteration order is insertion order, as a `Map`'s.
 */
export class SmallMap<K, V> {
  private firstKey: K | undefined;
  private firstValue: V | undefined;
  private hasFirst = false;
  /** Every entry (the first included) once there were two at a time. */
  private map: Map<K, V> | undefined;

  get size(): number {
    return this.map !== undefined ? this.map.size : this.hasFirst ? 1 : 0;
  }

  get(key: K): V | undefined {
    if (this.map !== undefined) return this.map.get(key);
    return this.hasFirst && this.firstKey === key ? this.firstValue : undefined;
  }

  has(key: K): boolean {
    if (this.map !== undefined) return this.map.has(key);
    return this.hasFirst && this.firstKey === key;
  }

  set(key: K, value: V): this {
    if (this.map !== undefined) this.map.set(key, value);
    else if (!this.hasFirst || this.firstKey === key) {
      this.firstKey = key;
      this.firstValue = value;
      this.hasFirst = true;
    } else {
      this.map = new Map<K, V>([[this.firstKey as K, this.firstValue as V]]).set(key, value);
      this.firstKey = undefined;
      this.firstValue = undefined;
      this.hasFirst = false;
    }
    return this;
  }

  delete(key: K): boolean {
    if (this.map !== undefined) return this.map.delete(key);
    if (!this.hasFirst || this.firstKey !== key) return false;
    this.clear();
    return true;
  }

  clear(): void {
    this.map = undefined;
    this.firstKey = undefined;
    this.firstValue = undefined;
    this.hasFirst = false;
  }

  /** The values, in insertion order: a copy, so the map may change while they are used. */
  values(): V[] {
    if (this.map !== undefined) return [...this.map.values()];
    return this.hasFirst ? [this.firstValue as V] : [];
  }
}
