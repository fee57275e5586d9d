// Client-side bans with exponential back-off: a peer that failed is avoided for a while, longer
// each time it fails again. A peer caught computing wrong outputs is excluded for good.

export interface BanPolicy {
  /** first ban, ms (default 5 000) */
  baseMs: number
  /** longest ban, ms (default 5 minutes) */
  maxMs: number
}

export class BanList {
  private readonly entries = new Map<string, { failures: number, until: number, reason: string }>()

  constructor (private readonly policy: BanPolicy = { baseMs: 5_000, maxMs: 300_000 }, private readonly now: () => number = Date.now) {}

  /** Bans `peerId` for longer than last time (unless excluded already); returns the ban's length, ms (Infinity when excluded). */
  ban (peerId: string, reason: string): number {
    const previous = this.entries.get(peerId)
    if (previous?.until === Infinity) return Infinity
    const failures = (previous?.failures ?? 0) + 1
    const ms = Math.min(this.policy.maxMs, this.policy.baseMs * 2 ** (failures - 1))
    this.entries.set(peerId, { failures, until: this.now() + ms, reason })
    return ms
  }

  /** Bans `peerId` for the life of this list. */
  exclude (peerId: string, reason: string): void {
    this.entries.set(peerId, { failures: 0, until: Infinity, reason })
  }

  /** Peers banned right now, each with the reason of its last ban. */
  active (): Map<string, string> {
    const now = this.now()
    return new Map([...this.entries].filter(([, e]) => e.until > now).map(([id, e]) => [id, e.reason]))
  }

  /** Only the peers excluded for good (caught computing wrong outputs). */
  excluded (): Map<string, string> {
    return new Map([...this.entries].filter(([, e]) => e.until === Infinity).map(([id, e]) => [id, e.reason]))
  }
}
