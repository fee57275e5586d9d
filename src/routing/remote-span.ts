// Client side of one inference session with one peer: open, steps, truncate, close. Every wait
// has a deadline; anything that goes wrong surfaces as a PeerFailure naming the peer and why, so
// the chain session can ban the peer and route around it.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { Arrivals, MessageChannel, type Channel } from '../protocol/channel.ts'
import { INFERENCE_PROTOCOL, type ErrorCode, type Message, type PushRouteMessage } from '../protocol/messages.ts'
import { ProtocolError } from '../protocol/errors.ts'
import type { WireDtype } from '../protocol/tensor.ts'
import type { SwarmNode } from './node.ts'
import { withTimeout } from './abort.ts'
import { retryIfClosedUnderUs } from './closed-under-us.ts'
import { openDirectPath } from './direct-path.ts'

export type FailureReason = 'busy' | 'draining' | 'timeout' | 'closed' | 'refused' | 'bad_output' | 'unreachable'

export class PeerFailure extends Error {
  override name = 'PeerFailure'
  /** `code`: the error code the peer itself sent, when it sent one */
  constructor (readonly peerId: string, readonly reason: FailureReason, message: string, readonly code?: ErrorCode) {
    super(`peer ${peerId.slice(-8)}: ${reason}: ${message}`)
  }
}

export interface RemoteSpanTarget { peerId: string, multiaddrs: string[], start: number, end: number }

export interface RemoteSpanOptions {
  modelId: string
  sessionId: string
  maxLength: number
  wireDtype: WireDtype
  hiddenSize: number
  /** deadline for dialing and opening, ms */
  openTimeoutMs: number
  /** move steps to the peer's direct data path when it offers one (routing/direct-path.ts; default false) */
  direct?: boolean
}

/** how long a polite close may take before the stream is dropped, ms */
const CLOSE_TIMEOUT_MS = 1_000
/** operations of a pipelined replay sent ahead of their answers, at most */
const PIPELINE_DEPTH = 16

/** A step of hidden (1, n, H) at `position`, or a truncation to `length` positions. */
export type SessionOp = { kind: 'step', position: number, hidden: Float32Array } | { kind: 'truncate', length: number }

export class RemoteSpanSession {
  private stepId = 0
  /** where messages go: the session's stream, or its direct socket once upgraded */
  private channel: Channel

  private constructor (readonly target: RemoteSpanTarget, private readonly stream: MessageChannel, private readonly opts: RemoteSpanOptions) {
    this.channel = stream
  }

  /** whether the session's steps run over the peer's direct data path */
  get direct (): boolean { return this.channel !== this.stream }

  static async open (node: SwarmNode, target: RemoteSpanTarget, opts: RemoteSpanOptions, signal?: AbortSignal): Promise<RemoteSpanSession> {
    return await withTimeout(opts.openTimeoutMs, signal, async (deadline) => {
      let channel: MessageChannel
      try {
        const id = peerIdFromString(target.peerId)
        const addrs = target.multiaddrs.map((a) => multiaddr(a))
        if (addrs.length > 0) await node.peerStore.merge(id, { multiaddrs: addrs })
        // opening is safe to repeat: nothing is sent before the stream is open
        channel = new MessageChannel(await retryIfClosedUnderUs(async () => await node.dialProtocol(id, INFERENCE_PROTOCOL, { signal: deadline, runOnLimitedConnection: true }), deadline))
      } catch (err) {
        signal?.throwIfAborted()
        throw new PeerFailure(target.peerId, deadline.aborted ? 'timeout' : 'unreachable', (err as Error).message)
      }
      const session = new RemoteSpanSession(target, channel, opts)
      const reply = await session.exchange({ kind: 'open', sessionId: opts.sessionId, modelId: opts.modelId, start: target.start, end: target.end, maxLength: opts.maxLength, wireDtype: opts.wireDtype }, deadline, signal)
      if (reply.kind !== 'opened') {
        session.abort()
        throw session.fail('bad_output', `expected opened, got ${reply.kind}`)
      }
      if (opts.direct === true) {
        // best effort, within a short bound: without it the session simply stays on its stream
        const direct = await openDirectPath(node, target.peerId, opts.sessionId, deadline)
        if (direct !== null) session.channel = direct
      }
      return session
    })
  }

  /** Runs hidden (1, n, H) for positions [position, position + n) through the peer's hop. */
  async step (hidden: Float32Array, position: number, timeoutMs: number, signal?: AbortSignal): Promise<Float32Array> {
    const H = this.opts.hiddenSize
    const n = hidden.length / H
    const stepId = this.stepId++ >>> 0
    const reply = await withTimeout(timeoutMs, signal, async (deadline) =>
      await this.exchange({ kind: 'step', stepId, position, hidden: { dtype: this.opts.wireDtype, shape: [1, n, H], data: hidden } }, deadline, signal))
    return this.checkResult(reply, stepId, position, n)
  }

  /** The hidden states of a `result` answering step `stepId` of n positions at `position`. */
  private checkResult (reply: Message, stepId: number, position: number, n: number): Float32Array {
    const H = this.opts.hiddenSize
    if (reply.kind !== 'result') throw this.fail('bad_output', `expected result, got ${reply.kind}`)
    const [b, rn, rh] = reply.hidden.shape
    if (reply.stepId !== stepId || reply.position !== position + n || b !== 1 || rn !== n || rh !== H) {
      throw this.fail('bad_output', `result (step ${reply.stepId}, position ${reply.position}, shape ${reply.hidden.shape.join('x')}) does not answer step ${stepId} at ${position} of ${n}x${H}`)
    }
    for (let i = 0; i < reply.hidden.data.length; i++) {
      if (!Number.isFinite(reply.hidden.data[i])) throw this.fail('bad_output', 'result holds non-finite values')
    }
    return reply.hidden.data
  }

  async truncate (length: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const reply = await withTimeout(timeoutMs, signal, async (deadline) => await this.exchange({ kind: 'truncate', length }, deadline, signal))
    if (reply.kind !== 'truncated' || reply.length !== length) throw this.fail('bad_output', `expected truncated(${length}), got ${reply.kind}`)
  }

  /**
   * Runs `ops` in order without waiting for each answer before sending the next (up to
   * PIPELINE_DEPTH ahead): the peer runs them one by one as ever, but a replay of n operations
   * costs the peer's compute and about one round trip, not n round trips. Every answer is checked
   * as `step` and `truncate` check theirs; `timeoutFor(op)` bounds the wait for op's answer,
   * counted from the answer before it. Returns each step's output (null for a truncation).
   */
  async pipeline (ops: readonly SessionOp[], timeoutFor: (op: SessionOp) => number, signal?: AbortSignal): Promise<Array<Float32Array | null>> {
    const H = this.opts.hiddenSize
    const stepIds: number[] = []
    let answered = 0
    const room = new Arrivals()
    // aborted when sending fails (its reason: the failure) or when the answers are all in
    const stop = new AbortController()
    const sending = (async () => {
      let what = 'step'
      try {
        for (const [i, op] of ops.entries()) {
          while (i - answered >= PIPELINE_DEPTH) await room.wait(stop.signal)
          what = op.kind
          await this.channel.send(op.kind === 'step'
            ? { kind: 'step', stepId: (stepIds[i] = this.stepId++ >>> 0), position: op.position, hidden: { dtype: this.opts.wireDtype, shape: [1, op.hidden.length / H, H], data: op.hidden } }
            : { kind: 'truncate', length: op.length }, stop.signal)
        }
      } catch (err) {
        // a failed send ends the wait for answers too; once stopped, there is nothing to report
        if (!stop.signal.aborted) stop.abort(this.broken(err, what, new AbortController().signal, signal))
      }
    })()
    try {
      const out: Array<Float32Array | null> = []
      for (const [i, op] of ops.entries()) {
        const reply = await withTimeout(timeoutFor(op), signal, async (deadline) => await this.awaitReply(op.kind, deadline, stop.signal, signal))
        answered++
        room.wakeAll()
        if (op.kind === 'step') {
          out.push(this.checkResult(reply, stepIds[i], op.position, op.hidden.length / H))
        } else {
          if (reply.kind !== 'truncated' || reply.length !== op.length) throw this.fail('bad_output', `expected truncated(${op.length}), got ${describeReply(reply)}`)
          out.push(null)
        }
      }
      return out
    } finally {
      if (!stop.signal.aborted) stop.abort(new Error('the pipeline ended'))
      await sending
    }
  }

  get sessionId (): string { return this.opts.sessionId }

  /** Sets where this session accepts pushed steps from and pushes its outputs to (see push-chain.ts). */
  async route (msg: Omit<PushRouteMessage, 'kind'>, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const reply = await withTimeout(timeoutMs, signal, async (deadline) => await this.exchange({ kind: 'push_route', ...msg }, deadline, signal))
    if (reply.kind !== 'push_routed') throw this.fail('bad_output', `expected push_routed, got ${reply.kind}`)
  }

  /**
   * Push mode, first hop: sends a step without waiting for its answer (which comes from the last
   * hop, as a `result`, and from the others as `pushed`). Returns the step id.
   */
  async sendStep (hidden: Float32Array, position: number, deadline: AbortSignal, signal?: AbortSignal): Promise<number> {
    const H = this.opts.hiddenSize
    const stepId = this.stepId++ >>> 0
    try {
      await this.channel.send({ kind: 'step', stepId, position, hidden: { dtype: this.opts.wireDtype, shape: [1, hidden.length / H, H], data: hidden } }, deadline)
    } catch (err) {
      throw this.broken(err, 'step', deadline, signal)
    }
    return stepId
  }

  /** Push mode, a hop before the last: waits for its `pushed` for step `stepId` (positions held after it: `position`). */
  async awaitPushed (stepId: number, position: number, deadline: AbortSignal, cancel: AbortSignal, signal?: AbortSignal): Promise<void> {
    const reply = await this.awaitReply('pushed', deadline, cancel, signal)
    if (reply.kind !== 'pushed' || reply.stepId !== stepId || reply.position !== position) {
      throw this.fail('bad_output', `expected pushed (step ${stepId}, position ${position}), got ${describeReply(reply)}`)
    }
  }

  /** Push mode, the last hop: waits for the `result` of step `stepId` (hidden (1, n, H) at `position`). */
  async awaitResult (stepId: number, position: number, n: number, deadline: AbortSignal, cancel: AbortSignal, signal?: AbortSignal): Promise<Float32Array> {
    return this.checkResult(await this.awaitReply('result', deadline, cancel, signal), stepId, position, n)
  }

  /** Ends the session politely; never throws. */
  async close (): Promise<void> {
    try {
      await withTimeout(CLOSE_TIMEOUT_MS, undefined, async (deadline) => {
        await this.channel.send({ kind: 'close' }, deadline)
        await this.channel.close(deadline)
        if (this.direct) await this.stream.close(deadline)
      })
    } catch {
      this.abort()
    }
  }

  /** Drops the stream at once (after a failure). */
  abort (): void {
    this.channel.abort('abandoned by the client')
    if (this.direct) this.stream.abort('abandoned by the client')
  }

  private async exchange (msg: Message, deadline: AbortSignal, userSignal?: AbortSignal): Promise<Message> {
    let reply: Message
    try {
      await this.channel.send(msg, deadline)
      reply = await this.channel.receive(deadline)
    } catch (err) {
      throw this.broken(err, msg.kind, deadline, userSignal)
    }
    return this.refusal(reply)
  }

  /**
   * The next message, answering something sent earlier. When `cancel` aborts first (another hop
   * failed), the wait ends with its reason and the stream stays as it is: this peer is not to blame.
   */
  private async awaitReply (what: string, deadline: AbortSignal, cancel: AbortSignal, userSignal?: AbortSignal): Promise<Message> {
    let reply: Message
    try {
      reply = await this.channel.receive(AbortSignal.any([deadline, cancel]))
    } catch (err) {
      if (cancel.aborted && !deadline.aborted) throw cancel.reason
      throw this.broken(err, what, deadline, userSignal)
    }
    return this.refusal(reply)
  }

  /** A failed send or receive: the stream is dropped, and the failure says whose fault it was. */
  private broken (err: unknown, what: string, deadline: AbortSignal, userSignal?: AbortSignal): unknown {
    if (userSignal?.aborted === true) return userSignal.reason
    this.abort()
    if (deadline.aborted) return this.fail('timeout', `no answer to ${what} in time`)
    // a malformed answer is the peer's fault; anything else broke the stream (reset, closed connection)
    return this.fail(err instanceof ProtocolError ? 'bad_output' : 'closed', `${(err as Error).name}: ${(err as Error).message}`)
  }

  /** Throws when `reply` is an `error` (the peer refused or ended the session). */
  private refusal (reply: Message): Message {
    if (reply.kind !== 'error') return reply
    this.abort()
    const reason: FailureReason = reply.code === 'busy' ? 'busy' : reply.code === 'draining' ? 'draining' : 'refused'
    // the reason is named once: "busy: …", "refused: wrong_model: …"
    throw this.fail(reason, reason === reply.code ? reply.message : `${reply.code}: ${reply.message}`, reply.code)
  }

  private fail (reason: FailureReason, message: string, code?: ErrorCode): PeerFailure {
    return new PeerFailure(this.target.peerId, reason, message, code)
  }
}

function describeReply (reply: Message): string {
  return reply.kind === 'pushed' || reply.kind === 'result' ? `${reply.kind} (step ${reply.stepId}, position ${reply.position})` : reply.kind
}
