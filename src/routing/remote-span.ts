// Client side of one inference session with one peer: open, steps, truncate, close. Every wait
// has a deadline; anything that goes wrong surfaces as a PeerFailure naming the peer and why, so
// the chain session can ban the peer and route around it.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { MessageChannel } from '../protocol/channel.ts'
import { INFERENCE_PROTOCOL, type Message } from '../protocol/messages.ts'
import type { WireDtype } from '../protocol/tensor.ts'
import type { SwarmNode } from './node.ts'

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

export class RemoteSpanSession {
  private stepId = 0

  private constructor (readonly target: RemoteSpanTarget, private readonly channel: MessageChannel, private readonly opts: RemoteSpanOptions) {}

  static async open (node: SwarmNode, target: RemoteSpanTarget, opts: RemoteSpanOptions, signal?: AbortSignal): Promise<RemoteSpanSession> {
    const deadline = anySignal(AbortSignal.timeout(opts.openTimeoutMs), signal)
    let channel: MessageChannel
    try {
      const id = peerIdFromString(target.peerId)
      const addrs = target.multiaddrs.map((a) => multiaddr(a))
      if (addrs.length > 0) await node.peerStore.merge(id, { multiaddrs: addrs })
      channel = new MessageChannel(await node.dialProtocol(id, INFERENCE_PROTOCOL, { signal: deadline }))
    } catch (err) {
      signal?.throwIfAborted()
      throw new PeerFailure(target.peerId, deadline.aborted ? 'timeout' : 'unreachable', (err as Error).message)
    }
    const session = new RemoteSpanSession(target, channel, opts)
    const reply = await session.exchange({ kind: 'open', sessionId: opts.sessionId, modelId: opts.modelId, start: target.start, end: target.end, maxLength: opts.maxLength, wireDtype: opts.wireDtype }, deadline, signal)
    if (reply.kind !== 'opened') throw session.fail('bad_output', `expected opened, got ${reply.kind}`)
    return session
  }

  /** Runs hidden (1, n, H) for positions [position, position + n) through the peer's hop. */
  async step (hidden: Float32Array, position: number, timeoutMs: number, signal?: AbortSignal): Promise<Float32Array> {
    const H = this.opts.hiddenSize
    const n = hidden.length / H
    const stepId = this.stepId++ >>> 0
    const deadline = anySignal(AbortSignal.timeout(timeoutMs), signal)
    const reply = await this.exchange({ kind: 'step', stepId, position, hidden: { dtype: this.opts.wireDtype, shape: [1, n, H], data: hidden } }, deadline, signal)
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
    const reply = await this.exchange({ kind: 'truncate', length }, anySignal(AbortSignal.timeout(timeoutMs), signal), signal)
    if (reply.kind !== 'truncated' || reply.length !== length) throw this.fail('bad_output', `expected truncated(${length}), got ${reply.kind}`)
  }

  /** Ends the session politely; never throws. */
  async close (): Promise<void> {
    try {
      await this.channel.send({ kind: 'close' }, AbortSignal.timeout(1000))
      await this.channel.close(AbortSignal.timeout(1000))
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
      throw this.fail((err as Error).name === 'ChannelClosedError' ? 'closed' : 'bad_output', (err as Error).message)
    }
    if (reply.kind === 'error') {
      this.abort()
      const reason: FailureReason = reply.code === 'busy' ? 'busy' : reply.code === 'draining' ? 'draining' : 'refused'
      throw this.fail(reason, `${reply.code}: ${reply.message}`)
    }
    return reply
  }

  private fail (reason: FailureReason, message: string): PeerFailure {
    return new PeerFailure(this.target.peerId, reason, message)
  }
}

function anySignal (a: AbortSignal, b?: AbortSignal): AbortSignal {
  return b === undefined ? a : AbortSignal.any([a, b])
}
