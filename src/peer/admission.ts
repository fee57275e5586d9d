// Who may hold how much of a peer: session slots and KV-cache bytes, shared fairly between
// remotes. Pure bookkeeping (no network, no clocks of its own: callers pass `now`).
//
// - Fair share: each remote peer id and each remote IP address holds at most a few sessions and
//   a share of the KV budget; an `open` or a reservation growth beyond that is refused.
// - Reservations grow: a session reserves KV for what it holds plus a margin, rounded up to a
//   chunk, and grows chunk by chunk as it advances (never past its maxLength).
// - Under pressure (slots or budget full), a newcomer evicts idle sessions: first of the IP
//   holding the most, then of the peer id holding the most there, then the idlest. A session in
//   active use (a step in flight, or a message within the active window) is never evicted.

export interface AdmissionLimits {
  /** sessions at most */
  maxSessions: number
  /** KV-cache bytes at most */
  capacityBytes: number
  /** sessions one remote peer id may hold */
  perPeerSessions: number
  /** sessions one remote IP address may hold */
  perIpSessions: number
  /** KV bytes one remote peer id may hold */
  perPeerBytes: number
  /** KV bytes one remote IP address may hold */
  perIpBytes: number
  /** a session with a message within this window (ms) is in active use and never evicted */
  activeWindowMs: number
}

/** Fair-share defaults for a peer with `maxSessions` slots and `capacityBytes` of KV budget. */
export function defaultShares (maxSessions: number, capacityBytes: number): Pick<AdmissionLimits, 'perPeerSessions' | 'perIpSessions' | 'perPeerBytes' | 'perIpBytes'> {
  return {
    perPeerSessions: Math.max(1, Math.min(4, Math.floor(maxSessions / 4))),
    perIpSessions: Math.max(1, Math.min(8, Math.floor(maxSessions / 2))),
    perPeerBytes: Math.floor(capacityBytes / 4),
    perIpBytes: Math.floor(capacityBytes / 2)
  }
}

/** Why an `open` or a growth was refused (metric label and error text). */
export type RefusalReason = 'slots_full' | 'cache_full' | 'peer_sessions' | 'ip_sessions' | 'peer_cache' | 'ip_cache'

/** Why a session was closed by the peer rather than by its client. */
export type EvictionReason = 'pressure' | 'no_first_step' | 'idle'

export interface Holder {
  /** remote peer id */
  peer: string
  /** remote IP address ('' when unknown, e.g. a relayed connection: then only the peer id counts) */
  ip: string
}

interface Entry extends Holder {
  key: string
  bytes: number
  lastActiveAt: number
  inFlight: number
}

export type Verdict =
  | { ok: true, evicted: string[] }
  | { ok: false, reason: RefusalReason, message: string }

export class Admission {
  private readonly entries = new Map<string, Entry>()
  private used = 0

  constructor (readonly limits: AdmissionLimits) {}

  get sessions (): number { return this.entries.size }
  get usedBytes (): number { return this.used }
  get freeBytes (): number { return this.limits.capacityBytes - this.used }
  get capacityBytes (): number { return this.limits.capacityBytes }

  /** bytes reserved by `key` (0 when it holds nothing) */
  reserved (key: string): number { return this.entries.get(key)?.bytes ?? 0 }

  /**
   * Admits a new session reserving `bytes`, evicting idle sessions of others when slots or
   * budget are full. The evicted keys are already released here; the caller ends their sessions.
   */
  open (key: string, holder: Holder, bytes: number, now: number): Verdict {
    if (this.entries.has(key)) throw new Error(`session ${key} is already admitted`)
    const share = this.shareCheck(holder, 1, bytes)
    if (share !== null) return share
    const newcomer: Entry = { key, ...holder, bytes: 0, lastActiveAt: now, inFlight: 0 }
    const made = this.makeRoom(newcomer, 1, bytes, now)
    if (!made.ok) return made
    newcomer.bytes = bytes
    this.entries.set(key, newcomer)
    this.used += bytes
    return made
  }

  /**
   * Grows `key`'s reservation to `bytes` (no-op when it already holds that much), evicting idle
   * sessions of others when the budget is full. Refused: the session keeps what it had.
   */
  grow (key: string, bytes: number, now: number): Verdict {
    const e = this.entries.get(key)
    if (e === undefined) throw new Error(`session ${key} is not admitted`)
    const extra = bytes - e.bytes
    if (extra <= 0) return { ok: true, evicted: [] }
    const share = this.shareCheck(e, 0, extra)
    if (share !== null) return share
    const made = this.makeRoom(e, 0, extra, now)
    if (!made.ok) return made
    e.bytes = bytes
    this.used += extra
    return made
  }

  /**
   * Grows `key`'s reservation to `targetBytes` (what it needs plus a margin) or, when that is
   * refused, to exactly `neededBytes`: a session may use its last bytes of share without a margin.
   */
  growTo (key: string, neededBytes: number, targetBytes: number, now: number): Verdict {
    const verdict = this.grow(key, targetBytes, now)
    return verdict.ok || neededBytes >= targetBytes ? verdict : this.grow(key, neededBytes, now)
  }

  /** a step starts: the session is in active use until it ends */
  stepStarted (key: string, now: number): void {
    const e = this.entries.get(key)
    if (e === undefined) return
    e.inFlight++
    e.lastActiveAt = now
  }

  stepEnded (key: string, now: number): void {
    const e = this.entries.get(key)
    if (e === undefined) return
    e.inFlight = Math.max(0, e.inFlight - 1)
    e.lastActiveAt = now
  }

  /** any other message from the session's client */
  touch (key: string, now: number): void {
    const e = this.entries.get(key)
    if (e !== undefined) e.lastActiveAt = now
  }

  release (key: string): void {
    const e = this.entries.get(key)
    if (e === undefined) return
    this.entries.delete(key)
    this.used -= e.bytes
  }

  /** open sessions per remote peer id */
  sessionsByPeer (): Map<string, number> {
    const out = new Map<string, number>()
    for (const e of this.entries.values()) out.set(e.peer, (out.get(e.peer) ?? 0) + 1)
    return out
  }

  private shareCheck (holder: Holder, sessions: number, bytes: number): Verdict | null {
    const L = this.limits
    const mine = this.held((e) => e.peer === holder.peer)
    if (sessions > 0 && mine.sessions + sessions > L.perPeerSessions) return refuse('peer_sessions', `this remote peer already holds ${mine.sessions} of its ${L.perPeerSessions} sessions here`)
    if (mine.bytes + bytes > L.perPeerBytes) return refuse('peer_cache', `this remote peer would hold ${mine.bytes + bytes} KV-cache bytes, over its share of ${L.perPeerBytes}`)
    if (holder.ip !== '') {
      const ours = this.held((e) => e.ip === holder.ip)
      if (sessions > 0 && ours.sessions + sessions > L.perIpSessions) return refuse('ip_sessions', `address ${holder.ip} already holds ${ours.sessions} of its ${L.perIpSessions} sessions here`)
      if (ours.bytes + bytes > L.perIpBytes) return refuse('ip_cache', `address ${holder.ip} would hold ${ours.bytes + bytes} KV-cache bytes, over its share of ${L.perIpBytes}`)
    }
    return null
  }

  /** Frees `sessions` slots and `bytes` of budget for `who`, evicting idle sessions of others in order. */
  private makeRoom (who: Entry, sessions: number, bytes: number, now: number): Verdict {
    const L = this.limits
    const fits = (): boolean => this.entries.size + sessions <= L.maxSessions && this.used + bytes <= L.capacityBytes
    if (fits()) return { ok: true, evicted: [] }
    const order = this.evictionOrder(who, now)
    // evict only when evicting everything evictable would make room: never for nothing
    let slots = this.entries.size
    let used = this.used
    const victims: Entry[] = []
    for (const v of order) {
      if (slots + sessions <= L.maxSessions && used + bytes <= L.capacityBytes) break
      victims.push(v)
      slots--
      used -= v.bytes
    }
    if (slots + sessions > L.maxSessions) return refuse('slots_full', `all ${L.maxSessions} session slots are in use`)
    if (used + bytes > L.capacityBytes) return refuse('cache_full', `not enough KV-cache memory (${this.freeBytes} of ${L.capacityBytes} bytes free, ${bytes} needed)`)
    for (const v of victims) this.release(v.key)
    return { ok: true, evicted: victims.map((v) => v.key) }
  }

  /**
   * Idle sessions of others, the first to go first: the IP holding the most sessions, then the
   * peer id holding the most there, then the session idle the longest.
   */
  evictionOrder (who: Holder & { key?: string }, now: number): Entry[] {
    const byIp = new Map<string, number>()
    const byPeer = new Map<string, number>()
    for (const e of this.entries.values()) {
      byIp.set(ipKey(e), (byIp.get(ipKey(e)) ?? 0) + 1)
      byPeer.set(e.peer, (byPeer.get(e.peer) ?? 0) + 1)
    }
    return [...this.entries.values()]
      .filter((e) => e.key !== who.key && e.peer !== who.peer && e.inFlight === 0 && now - e.lastActiveAt >= this.limits.activeWindowMs)
      .sort((a, b) =>
        (byIp.get(ipKey(b)) ?? 0) - (byIp.get(ipKey(a)) ?? 0) ||
        (byPeer.get(b.peer) ?? 0) - (byPeer.get(a.peer) ?? 0) ||
        a.lastActiveAt - b.lastActiveAt ||
        a.key.localeCompare(b.key))
  }

  private held (pred: (e: Entry) => boolean): { sessions: number, bytes: number } {
    let sessions = 0
    let bytes = 0
    for (const e of this.entries.values()) {
      if (!pred(e)) continue
      sessions++
      bytes += e.bytes
    }
    return { sessions, bytes }
  }
}

/** sessions without a known IP count as their own address */
function ipKey (e: Entry): string {
  return e.ip !== '' ? e.ip : `peer:${e.peer}`
}

function refuse (reason: RefusalReason, message: string): Verdict {
  return { ok: false, reason, message }
}

/**
 * Tokens to reserve for a session that must hold `needed` positions: `needed + margin`, rounded
 * up to a whole number of chunks, never more than `maxLength`.
 */
export function reservationTokens (needed: number, maxLength: number, chunk: number, margin = chunk): number {
  return Math.min(maxLength, Math.ceil((needed + margin) / chunk) * chunk)
}
