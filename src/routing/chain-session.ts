// The fault-tolerant inference session: a chain of per-peer sessions covering all blocks.
//
// Each hop keeps the inputs it was sent (its history). When a hop fails — stream error,
// timeout, busy/draining reply, malformed answer — the peer is banned with back-off, a
// replacement chain is planned for exactly that hop's block range (or a wider one when no peer
// can enter the range at its first block), the stored inputs are replayed through the new hops
// step by step, in the same step shapes as before, so their KV caches and outputs are
// bit-identical, and generation continues. Replaying the same step shapes is what keeps the
// tokens exactly equal to an uninterrupted run.
//
// Speculative decoding truncates the chain back to the accepted length after a verification
// step. Each hop's history keeps the truncation as an operation of its own: steps wholly past
// the cut are dropped, a step straddling it is kept as sent and followed by the truncation, so a
// replay performs the same operations in the same shapes and the newcomer's KV cache holds
// exactly the accepted positions, bit for bit.
//
// With `push`, hops send their outputs straight to the next hop and the client gets only the last
// hop's (push-chain.ts); the client then keeps only the first hop's history and recovers from a
// failure by replaying it through a whole new chain (the reasons are in push-chain.ts).
//
// With a verifier, every hop step (replays included) is passed to it: the local verifier checks
// each against a recomputation the client trusts, the replica auditor a sampled share against
// other peers. A peer whose output is found wrong is excluded for the rest of the session and
// routed around like any other failure (reason 'bad_output'); one the verifier cannot settle
// is routed around with an ordinary (temporary) ban.
import { randomUUID } from 'node:crypto'
import type { SwarmNode } from './node.ts'
import type { Logger } from './logger.ts'
import { planChain, NoRouteError, type Candidate, type PlannedHop } from './planner.ts'
import { RemoteSpanSession, PeerFailure, type FailureReason, type SessionOp } from './remote-span.ts'
import { BanList } from './bans.ts'
import { delay } from './abort.ts'
import { pushStep, routePush, PushOptionsError } from './push-chain.ts'
import type { WireDtype } from '../protocol/tensor.ts'

export interface ChainOptions {
  modelId: string
  numBlocks: number
  hiddenSize: number
  /** positions the session will hold at most */
  maxLength: number
  wireDtype?: WireDtype
  /** deadline for one decode step on one hop, ms (default 5 000) */
  stepTimeoutMs?: number
  /** extra deadline per position of a multi-position step (prefill, replay), ms (default 20) */
  perPositionTimeoutMs?: number
  /** deadline for opening a session on a peer, ms (default 5 000) */
  openTimeoutMs?: number
  /** recoveries allowed within one forward call (default 6) */
  maxRecoveries?: number
  /**
   * when opening or re-routing finds blocks nobody serves, keep looking this long for a peer to
   * take them over (joining, or moving there to rebalance), ms (default 3 000)
   */
  coverageWaitMs?: number
  /**
   * when every peer able to serve a range answers `busy` at open (its slots or this client's fair
   * share are in use), wait for one to free up this long, with back-off, before failing, ms
   * (default 30 000): a busy swarm queues new sessions instead of refusing them
   */
  busyWaitMs?: number
  /** checks every hop step; default: peers are trusted */
  verifier?: HopVerifier
  /** peers caught computing wrong outputs before this session (never routed through) */
  excluded?: Iterable<string>
  /**
   * server-to-server push: each hop sends its output straight to the next, the client gets only
   * the last hop's (default false: the client relays every hop's output). Not with a verifier.
   */
  push?: boolean
  /**
   * move each hop's steps to the peer's direct data path (a TCP socket sealed with AES-256-GCM,
   * direct-path.ts) when it offers one (default true; never with push)
   */
  direct?: boolean
  log: Logger
}

/** The hop a step went through. */
export interface VerifiedHop { peerId: string, start: number, end: number }

/** A verifier's answer about one hop step. */
export interface HopCheck {
  /**
   * ok: confirmed; unchecked: not checked (not sampled, nothing to check against); wrong: the
   * peer's output is wrong; unsettled: it may be wrong (sources disagree and none prevails)
   */
  verdict: 'ok' | 'unchecked' | 'wrong' | 'unsettled'
  /** what was found, for the failure message */
  detail?: string
  /** other peers found computing wrong outputs while checking (e.g. a lying replica) */
  liars?: string[]
}

/**
 * Checks peers' outputs. `hopKey` names one hop session: its steps arrive in order, in the shapes
 * they were sent to the peer, starting at position 0, so a verifier can keep a KV cache per key.
 */
export interface HopVerifier {
  /** whether `output` is what blocks [hop.start, hop.end) compute for `input` at `position` */
  check (hop: VerifiedHop, hopKey: string, input: Float32Array, position: number, output: Float32Array, signal?: AbortSignal): Promise<HopCheck>
  /** the hop session was cut back to its first `length` positions */
  truncate (hopKey: string, length: number): Promise<void>
  /** the hop session is over: drop what is kept for it; never throws */
  release (hopKey: string): Promise<void>
}

/** Where candidates come from: the DHT, refreshed on demand. */
export interface CandidateSource {
  candidates (refresh: boolean, signal?: AbortSignal): Promise<Candidate[]>
  /** the last list, however old (null before the first): a recovery's first try plans from it without waiting */
  known?: () => Candidate[] | null
}

export interface RerouteEvent {
  failedPeer: string
  reason: FailureReason
  /** the block range that was re-planned */
  start: number
  end: number
  replacement: PlannedHop[]
  /** from the failure to the replacement having caught up, ms */
  recoveryMs: number
}

/** Recoveries did not bring the chain back (the last failure is the cause). */
export class RerouteExhaustedError extends Error {
  override name = 'RerouteExhaustedError'
  constructor (message: string, cause: unknown) {
    super(message, { cause })
  }
}

/** What a hop was sent: a step of hidden (1, n, H) at `position`, or a truncation to `length` positions. */
type HopOp = SessionOp

interface Hop {
  plan: PlannedHop
  /** the session id on the peer, also the verifier's key */
  key: string
  session: RemoteSpanSession
  /** what was sent to this hop, in order (steps past a later truncation left out) */
  history: HopOp[]
}

export class ChainSession {
  private hops: Hop[] = []
  private rerouteCount = 0
  private readonly bans = new BanList()
  readonly rerouteLog: RerouteEvent[] = []
  /** peers whose outputs failed verification, in the order they were caught */
  readonly rejectedPeers: string[] = []
  private verified = 0
  private closed = false

  private constructor (private readonly node: SwarmNode, private readonly source: CandidateSource, private readonly o: Required<Omit<ChainOptions, 'log' | 'verifier' | 'excluded'>> & Pick<ChainOptions, 'log' | 'verifier'>) {}

  static async open (node: SwarmNode, source: CandidateSource, opts: ChainOptions, signal?: AbortSignal): Promise<ChainSession> {
    const defined = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as ChainOptions
    const { excluded, ...rest } = defined
    if (rest.push === true && rest.verifier !== undefined) {
      throw new PushOptionsError('push mode cannot be combined with verification or replica audits (--verify, --audit-rate): hops push their outputs to each other, so the client never sees the intermediate outputs those check')
    }
    const chain = new ChainSession(node, source, {
      wireDtype: 'f32', stepTimeoutMs: 5_000, perPositionTimeoutMs: 20, openTimeoutMs: 5_000, maxRecoveries: 6, coverageWaitMs: 3_000, busyWaitMs: 30_000, push: false, direct: true, ...rest
    })
    for (const peerId of excluded ?? []) chain.bans.exclude(peerId, 'bad_output')
    let lastError: unknown
    // counted from the first search that came back short, not from here: on a loaded host the
    // first search alone can take longer than the whole wait
    let coverageDeadline: number | null = null
    const busyDeadline = performance.now() + chain.o.busyWaitMs
    for (let attempt = 0, tries = 0, busyWaits = 0; attempt <= chain.o.maxRecoveries; tries++) {
      try {
        chain.hops = await chain.openHops(await chain.plan(0, opts.numBlocks, tries > 0, signal), signal)
        if (chain.o.push) await chain.routePushOrDrop(signal)
        return chain
      } catch (err) {
        lastError = err
        if (err instanceof NoRouteError) {
          coverageDeadline ??= performance.now() + chain.o.coverageWaitMs
          if (performance.now() < coverageDeadline) {
            // records may still be propagating (a peer that just joined): look again shortly
            await delay(300, signal)
            continue
          }
        }
        if (!(err instanceof PeerFailure)) throw err
        const banMs = chain.bans.ban(err.peerId, err.reason)
        chain.o.log.warn({ peer: err.peerId, reason: err.reason, banMs }, `re-planning the chain: ${err.message}`)
        if (err.reason === 'busy' && performance.now() < busyDeadline) {
          // another peer may take the range at once (the ban steers the planner away); if none
          // can, the ban is lifted for the only route and this waits for a slot to free up
          await delay(Math.min(1000, 50 * 2 ** busyWaits++), signal)
          continue
        }
        attempt++
      }
    }
    throw lastError
  }

  get reroutes (): number { return this.rerouteCount }

  /** hop steps whose outputs the verifier checked and confirmed (0 without a verifier) */
  get verifiedSteps (): number { return this.verified }

  route (): Array<{ peer: string, start: number, end: number, direct: boolean }> {
    return this.hops.map((h) => ({ peer: h.plan.peerId, start: h.plan.start, end: h.plan.end, direct: h.session.direct }))
  }

  /** hidden (1, n, H) at block 0 for positions [position, position + n) → hidden after the last block. */
  async forward (hidden: Float32Array, position: number, signal?: AbortSignal): Promise<Float32Array> {
    if (this.closed) throw new Error('the chain session is closed')
    if (this.o.push) return await this.forwardPushed(hidden, position, signal)
    let h = hidden
    let recoveries = 0
    for (let i = 0; i < this.hops.length;) {
      const hop = this.hops[i]
      try {
        h = await this.stepHop(hop, h, position, signal)
        i++
      } catch (err) {
        if (!(err instanceof PeerFailure)) throw err
        if (++recoveries > this.o.maxRecoveries) throw new RerouteExhaustedError(`gave up after ${this.o.maxRecoveries} recoveries in one step; last: ${err.message}`, err)
        const r = await this.recover(i, err, { kind: 'step', position, hidden: h }, signal)
        i = r.next
        h = r.output
      }
    }
    return h
  }

  /** Cuts every hop back to its first `length` positions (rollback of rejected speculative tokens). */
  async truncate (length: number, signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new Error('the chain session is closed')
    if (this.o.push) {
      await this.truncatePushed(length, signal)
      return
    }
    let recoveries = 0
    for (let i = 0; i < this.hops.length;) {
      try {
        await this.truncateHop(this.hops[i], length, signal)
        i++
      } catch (err) {
        if (!(err instanceof PeerFailure)) throw err
        if (++recoveries > this.o.maxRecoveries) throw new RerouteExhaustedError(`gave up after ${this.o.maxRecoveries} recoveries in one truncation; last: ${err.message}`, err)
        // the replacement replays the history, this truncation included
        i = (await this.recover(i, err, { kind: 'truncate', length }, signal)).next
      }
    }
  }

  async close (): Promise<void> {
    this.closed = true
    await this.dropHops(this.hops, true)
    this.hops = []
  }

  /** Push mode: one step through the whole chain by push; on a failure, a new chain (recoverPushed). */
  private async forwardPushed (hidden: Float32Array, position: number, signal?: AbortSignal): Promise<Float32Array> {
    const n = hidden.length / this.o.hiddenSize
    try {
      const output = await pushStep(this.hops.map((h) => h.session), hidden, position, n, this.timeoutFor(hidden) * this.hops.length, signal)
      this.hops[0].history.push({ kind: 'step', position, hidden })
      return output
    } catch (err) {
      if (!(err instanceof PeerFailure)) throw err
      return await this.recoverPushed(err, { kind: 'step', position, hidden }, signal)
    }
  }

  /** Push mode: the first hop's history is cut first, so a recovery replays straight to the truncated state. */
  private async truncatePushed (length: number, signal?: AbortSignal): Promise<void> {
    this.hops[0].history = cutHistory(this.hops[0].history, length, this.o.hiddenSize)
    try {
      for (const hop of this.hops) await this.truncateHop(hop, length, signal)
    } catch (err) {
      if (!(err instanceof PeerFailure)) throw err
      await this.recoverPushed(err, null, signal)
    }
  }

  /** Push mode: routes pushes through the freshly opened chain, or drops it. */
  private async routePushOrDrop (signal?: AbortSignal): Promise<void> {
    try {
      if (this.hops.length > 1) await routePush(this.hops.map((h) => h.session), this.o.openTimeoutMs, signal)
    } catch (err) {
      await this.dropHops(this.hops, false)
      this.hops = []
      throw err
    }
  }

  /**
   * Push mode: replaces the whole chain after `failure`, replays the first hop's history (then
   * `current`, the step in progress) through the new one hop by hop as in relayed mode, turns
   * push on and returns the output of `current` (empty without one).
   */
  private async recoverPushed (failure: PeerFailure, current: HopOp | null, signal?: AbortSignal): Promise<Float32Array> {
    const t0 = performance.now()
    const banMs = this.bans.ban(failure.peerId, failure.reason)
    this.o.log.warn({ peer: failure.peerId, reason: failure.reason, banMs }, `re-routing the push chain: ${failure.message}`)
    const history = this.hops[0].history
    const ops = current === null ? history : [...history, current]
    await this.dropHops(this.hops, false)
    this.hops = []
    let lastError: unknown = failure
    const coverageDeadline = t0 + this.o.coverageWaitMs
    let firstTry = true
    for (let attempt = 0; attempt <= this.o.maxRecoveries; firstTry = false) {
      signal?.throwIfAborted()
      let fresh: Hop[] = []
      try {
        const plan = await this.recoveryPlan(0, this.o.numBlocks, firstTry, signal)
        fresh = await this.openHops(plan, signal)
        const out = await this.replayAll(fresh, ops, signal)
        // only the first hop's inputs are kept in push mode
        for (const hop of fresh.slice(1)) hop.history = []
        this.hops = fresh
        await this.routePushOrDrop(signal)
        this.rerouteCount++
        const event: RerouteEvent = { failedPeer: failure.peerId, reason: failure.reason, start: 0, end: this.o.numBlocks, replacement: plan, recoveryMs: performance.now() - t0 }
        this.rerouteLog.push(event)
        this.o.log.warn({ ...event, replacement: plan.map((p) => `${p.peerId.slice(-8)}[${p.start},${p.end})`) }, 're-routed (push chain)')
        return current?.kind === 'step' ? out : new Float32Array(0)
      } catch (err) {
        await this.dropHops(fresh, false)
        this.hops = []
        if (err instanceof NoRouteError) {
          lastError = err
        } else {
          if (!(err instanceof PeerFailure)) throw err
          this.bans.ban(err.peerId, err.reason)
          lastError = err
        }
      }
      const awaitingCoverage = lastError instanceof NoRouteError && performance.now() < coverageDeadline
      await delay(awaitingCoverage ? 300 : Math.min(1000, 50 * 2 ** attempt), signal)
      if (!awaitingCoverage) attempt++
    }
    throw lastError instanceof NoRouteError ? lastError : new RerouteExhaustedError(`could not re-route the push chain around peer ${failure.peerId}: ${(lastError as Error).message}`, lastError)
  }

  /** One step through one hop: the peer's answer, checked when there is a verifier, then kept in the hop's history. */
  private async stepHop (hop: Hop, input: Float32Array, position: number, signal?: AbortSignal): Promise<Float32Array> {
    const output = await hop.session.step(input, position, this.timeoutFor(input), signal)
    await this.accept(hop, input, position, output, signal)
    return output
  }

  /** A hop's output for a step: checked when there is a verifier, then the step is kept in the hop's history. */
  private async accept (hop: Hop, input: Float32Array, position: number, output: Float32Array, signal?: AbortSignal): Promise<void> {
    const { peerId, start, end } = hop.plan
    if (this.o.verifier !== undefined) {
      const { verdict, detail, liars } = await this.o.verifier.check({ peerId, start, end }, hop.key, input, position, output, signal)
      for (const liar of liars ?? []) this.reject(liar)
      if (verdict === 'wrong' || verdict === 'unsettled') {
        if (verdict === 'wrong') this.reject(peerId)
        throw new PeerFailure(peerId, 'bad_output', detail ?? `its output for blocks [${start}, ${end}) at positions [${position}, ${position + input.length / this.o.hiddenSize}) is wrong`)
      }
      if (verdict === 'ok') this.verified++
    }
    hop.history.push({ kind: 'step', position, hidden: input })
  }

  /** Truncates one hop, and its verifier's copy; the history then replays to the same state. */
  private async truncateHop (hop: Hop, length: number, signal?: AbortSignal): Promise<void> {
    await hop.session.truncate(length, this.o.stepTimeoutMs, signal)
    await this.truncated(hop, length)
  }

  /** The hop's session was cut back to `length` positions: so are its history and what the verifier keeps. */
  private async truncated (hop: Hop, length: number): Promise<void> {
    await this.o.verifier?.truncate(hop.key, length)
    hop.history = cutHistory(hop.history, length, this.o.hiddenSize)
  }

  /**
   * Replays `ops` through fresh hops, hop after hop, each as one pipeline (remote-span.ts), in the
   * original step shapes; returns the last step's output from the last hop (empty without a step).
   */
  private async replayAll (hops: readonly Hop[], ops: readonly HopOp[], signal?: AbortSignal): Promise<Float32Array> {
    let inputs: readonly HopOp[] = ops
    for (const hop of hops) {
      const outputs = await hop.session.pipeline(inputs, (op) => op.kind === 'step' ? this.timeoutFor(op.hidden) : this.o.stepTimeoutMs, signal)
      const next: HopOp[] = []
      for (const [i, op] of inputs.entries()) {
        const output = outputs[i]
        if (op.kind === 'step' && output !== null) {
          await this.accept(hop, op.hidden, op.position, output, signal)
          next.push({ kind: 'step', position: op.position, hidden: output })
        } else if (op.kind === 'truncate') {
          await this.truncated(hop, op.length)
          next.push(op)
        }
      }
      inputs = next
    }
    const last = inputs.findLast((op) => op.kind === 'step')
    return last?.kind === 'step' ? last.hidden : new Float32Array(0)
  }

  /** Excludes a peer caught computing wrong outputs for the rest of the session. */
  private reject (peerId: string): void {
    this.bans.exclude(peerId, 'bad_output')
    if (!this.rejectedPeers.includes(peerId)) this.rejectedPeers.push(peerId)
  }

  /** Ends hop sessions, politely or at once, and what the verifier keeps for them. */
  private async dropHops (hops: Hop[], polite: boolean): Promise<void> {
    await Promise.all(hops.map(async (h) => {
      if (polite) await h.session.close()
      else h.session.abort()
      await this.o.verifier?.release(h.key)
    }))
  }

  private timeoutFor (hidden: Float32Array): number {
    return this.o.stepTimeoutMs + this.o.perPositionTimeoutMs * (hidden.length / this.o.hiddenSize)
  }

  private async plan (from: number, to: number, refresh: boolean, signal?: AbortSignal): Promise<PlannedHop[]> {
    const candidates = await this.source.candidates(refresh, signal)
    const cacheTokensNeeded = this.o.maxLength
    try {
      return planChain(candidates, from, to, { banned: this.bans.active(), cacheTokensNeeded })
    } catch (err) {
      if (!(err instanceof NoRouteError)) throw err
      // a back-off ban must not end a generation when the banned peer is still reachable and the
      // only way through (a transient error): try it again; peers caught lying stay excluded
      return planChain(candidates, from, to, { banned: this.bans.excluded(), cacheTokensNeeded })
    }
  }

  /**
   * A plan around a failed peer (banned by then). The first try plans from the candidates already
   * known, however old, so that a replica they list takes over without waiting for a DHT search
   * (tens of ms on loopback, several round trips over a wide-area link, more while departed peers
   * linger in the DHT); the DHT is asked when they hold no route, and on every later try.
   */
  private async recoveryPlan (from: number, to: number, firstTry: boolean, signal?: AbortSignal): Promise<PlannedHop[]> {
    if (firstTry) {
      // without plan()'s fallback through banned peers: the one just banned is likely down
      try {
        const known = this.source.known?.() ?? await this.source.candidates(false, signal)
        return planChain(known, from, to, { banned: this.bans.active(), cacheTokensNeeded: this.o.maxLength })
      } catch (err) {
        if (!(err instanceof NoRouteError)) throw err
      }
    }
    return await this.plan(from, to, true, signal)
  }

  /**
   * Opens a session on every planned hop, all at once: the hops do not depend on each other, and
   * over a wide-area link each open costs a few round trips (dial, open, direct-path upgrade).
   * If any fails, the ones that opened are closed and the first failure in chain order is thrown.
   */
  private async openHops (plan: PlannedHop[], signal?: AbortSignal): Promise<Hop[]> {
    const opened = await Promise.allSettled(plan.map(async (p): Promise<Hop> => {
      const key = randomUUID()
      const session = await RemoteSpanSession.open(this.node, p, {
        modelId: this.o.modelId, sessionId: key, maxLength: this.o.maxLength, wireDtype: this.o.wireDtype, hiddenSize: this.o.hiddenSize, openTimeoutMs: this.o.openTimeoutMs, direct: this.o.direct && !this.o.push
      }, signal)
      return { plan: p, key, session, history: [] }
    }))
    const hops = opened.flatMap((o) => o.status === 'fulfilled' ? [o.value] : [])
    const failed = opened.find((o): o is PromiseRejectedResult => o.status === 'rejected')
    if (failed === undefined) return hops
    await this.dropHops(hops, true)
    throw failed.reason
  }

  /**
   * Replaces the failed hop i (and, when needed, its neighbours) and replays history through
   * the replacement. `current` is what hop i was given in the operation in progress.
   * Returns the index of the hop to continue with and, after a step, the hidden states entering it.
   */
  private async recover (i: number, failure: PeerFailure, current: HopOp, signal?: AbortSignal): Promise<{ next: number, output: Float32Array }> {
    const t0 = performance.now()
    const banMs = this.bans.ban(failure.peerId, failure.reason)
    this.o.log.warn({ peer: failure.peerId, reason: failure.reason, banMs, span: [this.hops[i].plan.start, this.hops[i].plan.end] }, `re-routing: ${failure.message}`)
    const failed = this.hops[i]
    await this.dropHops([failed], false)
    let lastError: unknown = failure
    const coverageDeadline = t0 + this.o.coverageWaitMs
    let firstTry = true
    for (let attempt = 0; attempt <= this.o.maxRecoveries; firstTry = false) {
      signal?.throwIfAborted()
      for (const [j, k] of this.ranges(i)) {
        const from = this.hops[j].plan.start
        const to = this.hops[k].plan.end
        let plan: PlannedHop[]
        try {
          plan = await this.recoveryPlan(from, to, firstTry, signal)
        } catch (err) {
          if (err instanceof NoRouteError) { lastError = err; continue }
          throw err
        }
        // replay: what hop j was sent (which, for j < i, includes the step in progress)
        const inputs = j === i ? [...this.hops[j].history, current] : [...this.hops[j].history]
        let fresh: Hop[] = []
        try {
          fresh = await this.openHops(plan, signal)
          const out = await this.replayAll(fresh, inputs, signal)
          await this.dropHops(this.hops.slice(j, k + 1).filter((h) => h !== failed), true)
          this.hops.splice(j, k - j + 1, ...fresh)
          this.rerouteCount++
          const event: RerouteEvent = { failedPeer: failure.peerId, reason: failure.reason, start: from, end: to, replacement: plan, recoveryMs: performance.now() - t0 }
          this.rerouteLog.push(event)
          this.o.log.warn({ ...event, replacement: plan.map((p) => `${p.peerId.slice(-8)}[${p.start},${p.end})`) }, 're-routed')
          return { next: j + fresh.length, output: out }
        } catch (err) {
          await this.dropHops(fresh, false)
          if (!(err instanceof PeerFailure)) throw err
          this.bans.ban(err.peerId, err.reason)
          lastError = err
          break // re-plan with the new ban
        }
      }
      // blocks nobody serves: peers may be on their way (rebalancing), so look again shortly, and
      // without spending an attempt, until the coverage deadline
      const awaitingCoverage = lastError instanceof NoRouteError && performance.now() < coverageDeadline
      await delay(awaitingCoverage ? 300 : Math.min(1000, 50 * 2 ** attempt), signal)
      if (!awaitingCoverage) attempt++
    }
    throw lastError instanceof NoRouteError ? lastError : new RerouteExhaustedError(`could not re-route around peer ${failure.peerId}: ${(lastError as Error).message}`, lastError)
  }

  /** Hop ranges [j, k] to try replacing, narrowest first: the failed hop alone, then wider. */
  private ranges (i: number): Array<[number, number]> {
    const out: Array<[number, number]> = []
    const n = this.hops.length
    for (let width = 0; width < n; width++) {
      for (let j = Math.max(0, i - width); j <= i; j++) {
        const k = j + width
        if (k < n && k >= i) out.push([j, k])
      }
    }
    return out
  }
}

/**
 * `history` followed by a truncation to `length`: steps wholly past it go (replaying them and
 * cutting them off again would change nothing); if one is left straddling it, the truncation is
 * recorded after it.
 */
function cutHistory (history: HopOp[], length: number, hiddenSize: number): HopOp[] {
  const out: HopOp[] = []
  let held = 0
  for (const op of history) {
    if (op.kind === 'step') {
      if (op.position >= length) continue
      out.push(op)
      held = op.position + op.hidden.length / hiddenSize
    } else {
      out.push(op)
      held = Math.min(held, op.length)
    }
  }
  if (held > length) out.push({ kind: 'truncate', length })
  return out
}
