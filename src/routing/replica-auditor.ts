// Cross-checks peers against replicas serving the same blocks (`--audit-rate`): trust in the
// swarm's outputs without the block weights on the client.
//
// Every hop step passes through `check`. A sampled share of them (the rate) is also computed by
// a replica: another peer whose span starts where the hop starts and reaches its end. The
// replica must hold the same KV history as the audited peer, so the auditor keeps a shadow
// session on it per audited hop. Opened at the hop's first sampled step, the shadow is sent
// every input the hop had since the last audit in ONE multi-position step (the catch-up), then
// the sampled step itself in the shape the peer was sent it. Each position thus reaches the
// replica once, in few large steps: whatever the rate, auditing costs the replica at most one
// extra prefill-like pass over the hop's history, never a replay of the history per audit. The
// audited peer does none of this work and cannot tell which of its steps are checked.
//
// Outputs are compared with hopDifference, against a tolerance set by both peers' weight
// formats and the wire dtype (auditTolerance). On disagreement a referee decides: the client's
// own weights when it has them (a HopReferee), else a third peer, which gets a fresh session and
// the hop's inputs replayed. Whichever side the referee contradicts is the liar: an audited peer
// caught lying fails the step (the chain session excludes it and re-routes, replaying its stored
// inputs, so the tokens are those of an honest run); a lying replica is excluded from audits and
// routes. When the referee agrees with neither side the step is `unsettled`: the audited peer is
// routed around without being blamed for good.
import { randomUUID } from 'node:crypto'
import type { SwarmNode } from './node.ts'
import type { Logger } from './logger.ts'
import type { Candidate } from './planner.ts'
import { RemoteSpanSession, PeerFailure } from './remote-span.ts'
import { decodeTensorData, encodeTensorData, type WireDtype } from '../protocol/tensor.ts'
import { auditTolerance, hopDifference } from './hop-compare.ts'
import type { CandidateSource, HopCheck, HopVerifier, VerifiedHop } from './chain-session.ts'

/** One step sent to a hop: hidden (1, n, H) for positions [position, position + n). */
export interface HopInput { position: number, hidden: Float32Array }

/** A trusted recomputation (the client's own block weights). */
export interface HopReferee {
  /** the weight format it computes with */
  readonly format: string
  /** output of the last of `steps`, computed from scratch in the steps' shapes */
  recompute: (hop: VerifiedHop, steps: HopInput[], signal?: AbortSignal) => Promise<Float32Array>
}

export type AuditOutcome = 'agree' | 'liar' | 'replica_liar' | 'unsettled' | 'no_replica'

/** One sampled step's audit. */
export interface AuditEvent {
  outcome: AuditOutcome
  /** the audited peer */
  peer: string
  start: number
  end: number
  position: number
  replica?: string
  /** peer id of the third peer, or 'local' */
  referee?: string
  /** relative difference between the peer's and the replica's outputs (see hopDifference) */
  rel?: number
  tolerance?: number
}

/** Counts over one auditor's life. */
export interface AuditStats {
  /** the audit rate */
  rate: number
  /** steps sampled for an audit */
  sampled: number
  /** sampled steps a replica confirmed within tolerance */
  agreed: number
  /** sampled steps where the replica disagreed (a referee was asked) */
  mismatches: number
  /** sampled steps no replica could check (none serves the blocks, or it failed) */
  noReplica: number
  /** largest relative difference among agreeing audits: the honest spread seen */
  maxAgreeingRel: number
  /** peers caught lying, in order */
  liars: string[]
}

export interface ReplicaAuditorOptions {
  /** share of hop steps audited, in [0, 1] */
  rate: number
  modelId: string
  hiddenSize: number
  /** positions a session holds at most (the chain's) */
  maxLength: number
  wireDtype: WireDtype
  /** deadline for one step of one position, ms (default 5 000), plus perPositionTimeoutMs per position */
  stepTimeoutMs?: number
  perPositionTimeoutMs?: number
  /** deadline for opening a session on a replica, ms (default 5 000) */
  openTimeoutMs?: number
  /** trusted recomputation used as the referee before third peers (default none) */
  referee?: HopReferee
  /** peers caught lying; shared between auditors so a gateway keeps excluding them */
  liars?: Set<string>
  /** random source in [0, 1) for sampling (default Math.random) */
  random?: () => number
  onEvent?: (e: AuditEvent) => void
  log: Logger
}

interface Shadow {
  replica: Candidate
  session: RemoteSpanSession
  /** inputs [0, fed) have been sent to the replica */
  fed: number
}

interface AuditedHop {
  inputs: HopInput[]
  shadow: Shadow | null
  /** replicas that failed (not lied) while auditing this hop: not asked again for it */
  failed: Set<string>
}

/** when no replica is known, look for new ones at most this often, ms */
const REFRESH_INTERVAL_MS = 2_000

/** A referee that could not be used (e.g. a client without block weights): third peers decide. */
const noLocalReferee = Symbol('no local referee')

export class ReplicaAuditor implements HopVerifier {
  private readonly hops = new Map<string, AuditedHop>()
  private readonly liars: Set<string>
  private readonly random: () => number
  private referee: HopReferee | typeof noLocalReferee | undefined
  private lastRefresh = -Infinity
  /** announced weight format of every peer seen in a candidate list */
  private readonly formats = new Map<string, string>()
  readonly stats: AuditStats

  constructor (private readonly node: SwarmNode, private readonly source: CandidateSource, private readonly o: ReplicaAuditorOptions) {
    if (!(o.rate >= 0 && o.rate <= 1)) throw new RangeError(`the audit rate must be in [0, 1], got ${o.rate}`)
    this.liars = o.liars ?? new Set()
    this.random = o.random ?? Math.random
    this.referee = o.referee
    this.stats = { rate: o.rate, sampled: 0, agreed: 0, mismatches: 0, noReplica: 0, maxAgreeingRel: 0, liars: [] }
  }

  async check (hop: VerifiedHop, hopKey: string, input: Float32Array, position: number, output: Float32Array, signal?: AbortSignal): Promise<HopCheck> {
    const state = this.hopState(hopKey, position)
    state.inputs.push({ position, hidden: input })
    // caught by another session's audit (a gateway shares the list): route around it at once
    if (this.liars.has(hop.peerId)) return { verdict: 'wrong', detail: 'it was caught computing wrong outputs earlier' }
    if (!(this.random() < this.o.rate)) return { verdict: 'unchecked' }
    this.stats.sampled++
    let candidates = await this.source.candidates(false, signal)
    let replica = await this.replicaOutput(hop, state, candidates, signal)
    if (replica === null && performance.now() - this.lastRefresh >= REFRESH_INTERVAL_MS) {
      // replicas may have joined since the list was fetched
      this.lastRefresh = performance.now()
      candidates = await this.source.candidates(true, signal)
      replica = await this.replicaOutput(hop, state, candidates, signal)
    }
    for (const c of candidates) if (c.dtype !== undefined) this.formats.set(c.peerId, c.dtype)
    const format = (peerId: string): string => this.formats.get(peerId) ?? 'unknown'
    if (replica === null) {
      this.stats.noReplica++
      this.report({ outcome: 'no_replica', peer: hop.peerId, start: hop.start, end: hop.end, position })
      return { verdict: 'unchecked' }
    }
    const tolerance = auditTolerance(this.o.wireDtype, format(hop.peerId), replica.format)
    const { rel } = hopDifference(output, replica.output, this.o.hiddenSize)
    const base = { peer: hop.peerId, start: hop.start, end: hop.end, position, replica: replica.peerId, rel, tolerance }
    if (rel <= tolerance) {
      this.stats.agreed++
      this.stats.maxAgreeingRel = Math.max(this.stats.maxAgreeingRel, rel)
      this.report({ outcome: 'agree', ...base })
      return { verdict: 'ok' }
    }
    this.stats.mismatches++
    this.o.log.warn(base, 'audit: the replica disagrees with the peer; asking a referee')
    const ruling = await this.arbitrate(hop, state.inputs, { peerId: hop.peerId, output, format: format(hop.peerId) }, replica, candidates, signal)
    if (ruling.liar === 'replica') {
      this.convict(replica.peerId)
      this.dropShadow(state, false)
      this.report({ outcome: 'replica_liar', ...base, referee: ruling.referee })
      return { verdict: 'ok', liars: [replica.peerId] }
    }
    if (ruling.liar === 'none') {
      // both sides within tolerance of the referee: the gap was honest spread
      this.report({ outcome: 'agree', ...base, referee: ruling.referee })
      return { verdict: 'ok' }
    }
    if (ruling.liar === 'peer') {
      this.convict(hop.peerId)
      this.report({ outcome: 'liar', ...base, referee: ruling.referee })
      return { verdict: 'wrong', detail: `its output for blocks [${hop.start}, ${hop.end}) at position ${position} differs from replica ${replica.peerId.slice(-8)} (relative ${rel.toExponential(2)} > ${tolerance}) and the referee (${ruling.referee.slice(-8)}) sides with the replica` }
    }
    this.report({ outcome: 'unsettled', ...base, referee: ruling.referee })
    return { verdict: 'unsettled', detail: `its output for blocks [${hop.start}, ${hop.end}) at position ${position} differs from replica ${replica.peerId.slice(-8)} and no referee settled who is right` }
  }

  async release (hopKey: string): Promise<void> {
    const state = this.hops.get(hopKey)
    if (state === undefined) return
    this.hops.delete(hopKey)
    if (state.shadow !== null) await state.shadow.session.close()
  }

  /** The hop's record, reset when a step does not continue where the last one ended (a truncation). */
  private hopState (hopKey: string, position: number): AuditedHop {
    let state = this.hops.get(hopKey)
    if (state === undefined) {
      state = { inputs: [], shadow: null, failed: new Set() }
      this.hops.set(hopKey, state)
    }
    const last = state.inputs[state.inputs.length - 1]
    const next = last === undefined ? 0 : last.position + last.hidden.length / this.o.hiddenSize
    if (position !== next) this.cut(state, position)
    return state
  }

  /** The hop session was cut back to `length` positions (speculative decoding): so is the record. */
  async truncate (hopKey: string, length: number): Promise<void> {
    const state = this.hops.get(hopKey)
    if (state !== undefined) this.cut(state, length)
  }

  /**
   * Keeps the inputs before `position`, cutting a step that straddles it; the shadow session holds
   * positions past the cut, so it goes (the next audit opens a fresh one and catches it up).
   */
  private cut (state: AuditedHop, position: number): void {
    const H = this.o.hiddenSize
    state.inputs = state.inputs.filter((s) => s.position < position).map((s) => s.position + s.hidden.length / H <= position ? s : { position: s.position, hidden: s.hidden.subarray(0, (position - s.position) * H) })
    this.dropShadow(state, true)
  }

  /** The replica's output for the hop's last input, from its shadow session (opened and caught up as needed); null when no replica could answer. */
  private async replicaOutput (hop: VerifiedHop, state: AuditedHop, candidates: Candidate[], signal?: AbortSignal): Promise<{ peerId: string, output: Float32Array, format: string } | null> {
    const peerFormat = candidates.find((c) => c.peerId === hop.peerId)?.dtype
    for (;;) {
      if (state.shadow === null) {
        const replica = this.pickPeer(hop, candidates, new Set([hop.peerId, ...state.failed]), peerFormat)
        if (replica === null) return null
        try {
          state.shadow = { replica, session: await this.openSession(replica, hop, signal), fed: 0 }
        } catch (err) {
          if (!(err instanceof PeerFailure)) throw err
          state.failed.add(replica.peerId)
          continue
        }
      }
      const shadow = state.shadow
      try {
        const pending = state.inputs.slice(shadow.fed)
        const output = await this.replay(shadow.session, pending, signal)
        shadow.fed = state.inputs.length
        return { peerId: shadow.replica.peerId, output, format: shadow.replica.dtype ?? 'unknown' }
      } catch (err) {
        if (!(err instanceof PeerFailure)) throw err
        this.o.log.info({ replica: shadow.replica.peerId, reason: err.reason }, `audit: replica failed, trying another: ${err.message}`)
        state.failed.add(shadow.replica.peerId)
        this.dropShadow(state, false)
      }
    }
  }

  /**
   * Who lies, the peer or the replica: the local referee when there is one, else third peers in
   * turn (each one that fails is skipped; one that agrees with neither side does not settle it).
   */
  private async arbitrate (hop: VerifiedHop, inputs: HopInput[], peer: Side, replica: Side, candidates: Candidate[], signal?: AbortSignal): Promise<{ liar: Liar, referee: string }> {
    const rule = (output: Float32Array, format: string): Liar => {
      const peerOk = hopDifference(peer.output, output, this.o.hiddenSize).rel <= auditTolerance(this.o.wireDtype, peer.format, format)
      const replicaOk = hopDifference(replica.output, output, this.o.hiddenSize).rel <= auditTolerance(this.o.wireDtype, replica.format, format)
      return peerOk ? (replicaOk ? 'none' : 'replica') : (replicaOk ? 'peer' : 'unsettled')
    }
    const local = await this.localRecompute(hop, inputs, signal)
    if (local !== null) return { liar: rule(local.output, local.format), referee: 'local' }
    const asked = new Set([peer.peerId, replica.peerId])
    for (;;) {
      const third = this.pickPeer(hop, candidates, asked, peer.format)
      if (third === null) return { liar: 'unsettled', referee: 'none' }
      asked.add(third.peerId)
      let session: RemoteSpanSession | null = null
      try {
        session = await this.openSession(third, hop, signal)
        const output = await this.replay(session, inputs, signal)
        const liar = rule(output, third.dtype ?? 'unknown')
        if (liar !== 'unsettled') return { liar, referee: third.peerId }
        this.o.log.warn({ referee: third.peerId }, 'audit: the referee agrees with neither side; asking another')
      } catch (err) {
        if (!(err instanceof PeerFailure)) throw err
      } finally {
        await session?.close()
      }
    }
  }

  private async localRecompute (hop: VerifiedHop, inputs: HopInput[], signal?: AbortSignal): Promise<{ output: Float32Array, format: string } | null> {
    const referee = this.referee
    if (referee === undefined || referee === noLocalReferee) return null
    try {
      // the peers computed on inputs, and answered with outputs, rounded to the wire dtype
      const steps = inputs.map((s) => ({ position: s.position, hidden: this.onWire(s.hidden) }))
      return { output: this.onWire(await referee.recompute(hop, steps, signal)), format: referee.format }
    } catch (err) {
      signal?.throwIfAborted()
      this.o.log.warn({ err: (err as Error).message }, 'audit: no local referee (third peers decide instead)')
      this.referee = noLocalReferee
      return null
    }
  }

  /** `x` as it arrives after crossing the wire */
  private onWire (x: Float32Array): Float32Array {
    return this.o.wireDtype === 'f32' ? x : decodeTensorData(encodeTensorData(x, this.o.wireDtype), this.o.wireDtype)
  }

  /** Sends `inputs` but the last in one step (the catch-up), then the last alone; its output. */
  private async replay (session: RemoteSpanSession, inputs: HopInput[], signal?: AbortSignal): Promise<Float32Array> {
    const H = this.o.hiddenSize
    const head = inputs.slice(0, -1)
    if (head.length > 0) {
      const hidden = new Float32Array(head.reduce((n, s) => n + s.hidden.length, 0))
      let at = 0
      for (const s of head) { hidden.set(s.hidden, at); at += s.hidden.length }
      await session.step(hidden, head[0].position, this.timeoutFor(hidden.length / H), signal)
    }
    const last = inputs[inputs.length - 1]
    return await session.step(last.hidden, last.position, this.timeoutFor(last.hidden.length / H), signal)
  }

  /** An online peer able to serve exactly the hop (same first block, reaching its end), same weight format first, then the nearest. */
  private pickPeer (hop: VerifiedHop, candidates: Candidate[], skip: Set<string>, format: string | undefined): Candidate | null {
    const able = candidates.filter((c) => c.state === 'online' && c.start === hop.start && c.end >= hop.end && !skip.has(c.peerId) && !this.liars.has(c.peerId))
    able.sort((a, b) => Number(b.dtype === format) - Number(a.dtype === format) || a.latencyMs - b.latencyMs)
    return able[0] ?? null
  }

  private async openSession (peer: Candidate, hop: VerifiedHop, signal?: AbortSignal): Promise<RemoteSpanSession> {
    return await RemoteSpanSession.open(this.node, { peerId: peer.peerId, multiaddrs: peer.multiaddrs, start: hop.start, end: hop.end }, {
      modelId: this.o.modelId, sessionId: randomUUID(), maxLength: this.o.maxLength, wireDtype: this.o.wireDtype, hiddenSize: this.o.hiddenSize, openTimeoutMs: this.o.openTimeoutMs ?? 5_000
    }, signal)
  }

  private dropShadow (state: AuditedHop, polite: boolean): void {
    const shadow = state.shadow
    state.shadow = null
    if (shadow === null) return
    if (polite) void shadow.session.close()
    else shadow.session.abort()
  }

  private convict (peerId: string): void {
    this.liars.add(peerId)
    if (!this.stats.liars.includes(peerId)) this.stats.liars.push(peerId)
    this.o.log.warn({ peer: peerId }, 'audit: peer caught computing wrong outputs; excluded')
  }

  private report (e: AuditEvent): void {
    if (e.outcome !== 'agree') this.o.log.info(e, `audit: ${e.outcome}`)
    this.o.onEvent?.(e)
  }

  private timeoutFor (positions: number): number {
    return (this.o.stepTimeoutMs ?? 5_000) + (this.o.perPositionTimeoutMs ?? 20) * positions
  }
}

interface Side { peerId: string, output: Float32Array, format: string }
/** a referee's ruling: who lied ('none': the gap was honest spread; 'unsettled': it agrees with neither) */
type Liar = 'peer' | 'replica' | 'none' | 'unsettled'
