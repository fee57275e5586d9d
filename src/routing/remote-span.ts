// Client side of one inference session with one peer: open, steps, truncate, close. Every wait
// has a deadline; anything that goes wrong surfaces as a PeerFailure naming the peer and why, so
// the chain session can ban the peer and route around it.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { MessageChannel } from '../protocol/channel.ts'
import { INFERENCE_PROTOCOL, type Message } from '../protocol/messages.ts'
import { ProtocolError } from '../protocol/errors.ts'
import type { WireDtype } from '../protocol/tensor.ts'
import type { SwarmNode } from './node.ts'
import { withTimeout } from './abort.ts'
import { retryIfClosedUnderUs } from './closed-under-us.ts'

export type FailureReason = 'busy' | 'draining' | 'timeout' | 'closed' | 'refused' | 'bad_output' | 'unreachable'

export class PeerFailure extends Error {
  override name = 'PeerFailure'
  constructor (readonly peerId: string, readonly reason: FailureReason, message: string) {
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
}

/** how long a polite close may take before the stream is dropped, ms */
const CLOSE_TIMEOUT_MS = 1_000

export class RemoteSpanSession {
  private stepId = 0

  private constructor (readonly target: RemoteSpanTarget, private readonly channel: MessageChannel, private readonly opts: RemoteSpanOptions) {}

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

  /** Ends the session politely; never throws. */
  async close (): Promise<void> {
    try {
      await withTimeout(CLOSE_TIMEOUT_MS, undefined, async (deadline) => {
        await this.channel.send({ kind: 'close' }, deadline)
        await this.channel.close(deadline)
      })
    } catch {
      this.channel.abort('session closed')
    }
  }

  /** Drops the stream at once (after a failure). */
  abort (): void {
    this.channel.abort('abandoned by the client')
  }

  private async exchange (msg: Message, deadline: AbortSignal, userSignal?: AbortSignal): Promise<Message> {
    let reply: Message
    try {
      await this.channel.send(msg, deadline)
      reply = await this.channel.receive(deadline)
    } catch (err) {
      userSignal?.throwIfAborted()
      this.abort()
      if (deadline.aborted) throw this.fail('timeout', `no answer to ${msg.kind} in time`)
      // a malformed answer is the peer's fault; anything else broke the stream (reset, closed connection)
      throw this.fail(err instanceof ProtocolError ? 'bad_output' : 'closed', `${(err as Error).name}: ${(err as Error).message}`)
    }
    if (reply.kind === 'error') {
      this.abort()
      const reason: FailureReason = reply.code === 'busy' ? 'busy' : reply.code === 'draining' ? 'draining' : 'refused'
      // the reason is named once: "busy: …", "refused: wrong_model: …"
      throw this.fail(reason, reason === reply.code ? reply.message : `${reply.code}: ${reply.message}`)
    }
    return reply
  }

  private fail (reason: FailureReason, message: string): PeerFailure {
    return new PeerFailure(this.target.peerId, reason, message)
  }
}
