// KV-cache memory accounting: each session reserves its worst case (maxLength positions) up
// front, so a peer refuses new sessions ("busy") instead of running out of memory later.

export class CacheBudget {
  private readonly reservations = new Map<string, number>()
  private used = 0

  constructor (readonly capacityBytes: number) {}

  /** Reserves `bytes` for `key`; false (and nothing reserved) when the budget cannot hold it. */
  reserve (key: string, bytes: number): boolean {
    if (this.reservations.has(key) || bytes < 0 || this.used + bytes > this.capacityBytes) return false
    this.reservations.set(key, bytes)
    this.used += bytes
    return true
  }

  release (key: string): void {
    const bytes = this.reservations.get(key)
    if (bytes === undefined) return
    this.reservations.delete(key)
    this.used -= bytes
  }

  get usedBytes (): number {
    return this.used
  }

  get freeBytes (): number {
    return this.capacityBytes - this.used
  }
}
