// Per-remote-peer request limits: how many streams a remote may hold open on the session
// protocol, and how fast it may open sessions and send messages (token buckets). Pure
// bookkeeping: callers pass `now` (ms); memory is bounded however many peer ids a flood uses.

/** A remote went over one of its per-peer request limits. */
export class RequestLimitError extends Error {
  override name = 'RequestLimitError'
}

/** A token bucket per key: `rate` tokens a second, at most `burst` saved up. */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number, at: number }>()

  constructor (readonly rate: number, readonly burst: number, private readonly maxKeys = 4096) {
    if (!(rate > 0) || !(burst >= 1)) throw new RangeError(`token bucket needs rate > 0 and burst >= 1, got ${rate}, ${burst}`)
  }

  get size (): number { return this.buckets.size }

  /** Takes one token for `key`: 0 when it had one, else how long (ms) until it will. */
  take (key: string, now: number): number {
    const b = this.refilled(key, now)
    if (b.tokens >= 1) {
      b.tokens -= 1
      return 0
    }
    return Math.ceil((1 - b.tokens) / this.rate * 1000)
  }

  private refilled (key: string, now: number): { tokens: number, at: number } {
    let b = this.buckets.get(key)
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) this.forgetFull(now)
      b = { tokens: this.burst, at: now }
      this.buckets.set(key, b)
    } else {
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) / 1000 * this.rate)
      b.at = now
      // most recently used last, so the oldest go first when memory is short
      this.buckets.delete(key)
      this.buckets.set(key, b)
    }
    return b
  }

  /**
   * Drops buckets that have refilled (forgetting them changes nothing); if every bucket is
   * still draining, drops the least recently used half (a flood of fresh ids then gains at most
   * a refill for the dropped ones, and the map stays bounded).
   */
  private forgetFull (now: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + (now - b.at) / 1000 * this.rate >= this.burst) this.buckets.delete(k)
    }
    if (this.buckets.size < this.maxKeys) return
    let drop = Math.ceil(this.maxKeys / 2)
    for (const k of this.buckets.keys()) {
      if (drop-- <= 0) break
      this.buckets.delete(k)
    }
  }
}

/** Counts open streams per key; refuses beyond `max`. */
export class StreamCounter {
  private readonly open = new Map<string, number>()

  constructor (readonly max: number) {}

  held (key: string): number { return this.open.get(key) ?? 0 }

  /** Counts one more stream for `key`; false (and nothing counted) when it already holds `max`. */
  acquire (key: string): boolean {
    const n = this.held(key)
    if (n >= this.max) return false
    this.open.set(key, n + 1)
    return true
  }

  release (key: string): void {
    const n = this.held(key) - 1
    if (n <= 0) this.open.delete(key)
    else this.open.set(key, n)
  }
}

export interface RequestLimits {
  /** session-protocol streams one remote peer id may hold open at once */
  streamsPerPeer: number
  /** session opens per second one remote peer id may make (bursts of twice that) */
  opensPerPeerPerSecond: number
  /** messages per second one remote peer id may send across its sessions (bursts of twice that); beyond it, reading waits */
  messagesPerPeerPerSecond: number
}

/** Defaults: a few streams beyond the remote's session share; rates far above an honest client's. */
export function defaultRequestLimits (perPeerSessions: number): RequestLimits {
  return { streamsPerPeer: perPeerSessions + 4, opensPerPeerPerSecond: 20, messagesPerPeerPerSecond: 1000 }
}

/** The per-remote-peer limits of one peer, as used by its session handler. */
export class RequestLimiter {
  readonly streams: StreamCounter
  readonly opens: TokenBuckets
  readonly messages: TokenBuckets

  constructor (readonly limits: RequestLimits) {
    this.streams = new StreamCounter(limits.streamsPerPeer)
    this.opens = new TokenBuckets(limits.opensPerPeerPerSecond, Math.max(1, 2 * limits.opensPerPeerPerSecond))
    this.messages = new TokenBuckets(limits.messagesPerPeerPerSecond, Math.max(1, 2 * limits.messagesPerPeerPerSecond))
  }
}
