// Client-side bans with exponential back-off: a peer that failed is avoided for a while, longer
// each time it fails again.

export interface BanPolicy {
  /** first ban, ms (default 5 000) */
  baseMs: number
  /** longest ban, ms (default 5 minutes) */
  maxMs: number
}

export class BanList {
  private readonly entries = new Map<string, { failures: number, until: number }>()

  constructor (private readonly policy: BanPolicy = { baseMs: 5_000, maxMs: 300_000 }, private readonly now: () => number = Date.now) {}

  ban (peerId: string): number {
    const failures = (this.entries.get(peerId)?.failures ?? 0) + 1
    const ms = Math.min(this.policy.maxMs, this.policy.baseMs * 2 ** (failures - 1))
    this.entries.set(peerId, { failures, until: this.now() + ms })
    return ms
  }

  /** Peers banned right now. */
  active (): Set<string> {
    const now = this.now()
    return new Set([...this.entries].filter(([, e]) => e.until > now).map(([id]) => id))
  }
}
