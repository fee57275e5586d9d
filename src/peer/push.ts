// Server-to-server push, peer side (the client side and the design are in
// src/routing/push-chain.ts).
//
// Receiving: a session the client has given a `push_route` with `from` registers its token here;
// `push` frames arrive on PUSH_PROTOCOL streams, and one is delivered to that session's inbox only
// when its token is registered, the pushing peer is the one the client named, and the session id
// matches. A peer may hold as many push streams here as sessions here accept pushes from it (one
// per session it forwards for), plus one: a peer nobody named cannot open any, and one forwarding
// for many clients' sessions is not held to a single client's stream share. Anything else gets an `error` (forbidden / bad_request / busy) and the push stream is
// closed; the sessions and the peer carry on. A malformed frame also shuts its sender out, as on
// session streams.
//
// Sending: a session given a `to` opens a PushLink to the next hop and pushes each step's output
// over it. The link watches its stream: the next hop answers only to refuse (or it goes away),
// so anything read there, or the stream ending, breaks the link and the session reports
// `push_failed` to its client.
import type { Stream } from '@libp2p/interface'
import { MessageChannel, ChannelClosedError } from '../protocol/channel.ts'
import { ProtocolError, LimitExceededError } from '../protocol/errors.ts'
import type { ErrorCode, FrameLimits, PushMessage, PushTarget, StepMessage } from '../protocol/messages.ts'
import type { Logger } from '../routing/logger.ts'
import type { Holder } from './admission.ts'
import { RequestLimitError } from './rate-limit.ts'

/** pushed steps a session may hold unprocessed; an honest chain pushes one step at a time */
export const PUSH_INBOX_CAPACITY = 2
/** push streams a peer may hold beyond one per session that accepts its pushes */
export const PUSH_STREAM_SLACK = 1

/** Pushed steps waiting for their session's loop, in arrival order. */
export class PushInbox {
  private readonly queue: StepMessage[] = []
  private waiter: ((step: StepMessage) => void) | null = null
  /** steps delivered so far */
  delivered = 0

  /** Queues a step; false when the inbox is full. */
  deliver (step: StepMessage): boolean {
    if (this.waiter === null && this.queue.length >= PUSH_INBOX_CAPACITY) return false
    this.delivered++
    if (this.waiter !== null) {
      const waiter = this.waiter
      this.waiter = null
      waiter(step)
      return true
    }
    this.queue.push(step)
    return true
  }

  /** The next pushed step (one waiter at a time); a step delivered after `signal` aborts stays queued. */
  async next (signal: AbortSignal): Promise<StepMessage> {
    signal.throwIfAborted()
    const queued = this.queue.shift()
    if (queued !== undefined) return queued
    return await new Promise<StepMessage>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiter = null
        reject(signal.reason)
      }
      this.waiter = (step) => {
        signal.removeEventListener('abort', onAbort)
        resolve(step)
      }
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }
}

/** A session that accepts pushes: its client-chosen id, the one peer allowed to push, its inbox. */
export interface PushAcceptor {
  sessionId: string
  from: string
  inbox: PushInbox
}

/** Sessions accepting pushes, by token; and the push streams open from each peer. */
export class PushRegistry {
  private readonly byToken = new Map<string, PushAcceptor>()
  private readonly streams = new Map<string, number>()

  /** false when another session holds the token already */
  accept (token: string, acceptor: PushAcceptor): boolean {
    if (this.byToken.has(token)) return false
    this.byToken.set(token, acceptor)
    return true
  }

  drop (token: string): void {
    this.byToken.delete(token)
  }

  find (token: string): PushAcceptor | undefined {
    return this.byToken.get(token)
  }

  get size (): number { return this.byToken.size }

  /** Counts a push stream from `peer`; false (not counted) when it would hold more than its sessions here allow. */
  openStream (peer: string): boolean {
    const open = this.streams.get(peer) ?? 0
    let accepting = 0
    for (const a of this.byToken.values()) if (a.from === peer) accepting++
    if (accepting === 0 || open >= accepting + PUSH_STREAM_SLACK) return false
    this.streams.set(peer, open + 1)
    return true
  }

  closeStream (peer: string): void {
    const open = (this.streams.get(peer) ?? 0) - 1
    if (open > 0) this.streams.set(peer, open)
    else this.streams.delete(peer)
  }
}

export interface PushContext {
  registry: PushRegistry
  /** the largest frames accepted: one step's worth (see frameLimitsFor) */
  frameLimits: FrameLimits
  /** a push stream with no frame for this long is closed, ms */
  idleTimeoutMs: number
  offended: (holder: Holder) => void
  shutOut: (holder: Holder) => boolean
  emit: (event: Record<string, unknown>) => void
  log: Logger
}

/** A push refused: told to the pushing peer, then its stream is closed. */
class PushRefused extends Error {
  constructor (readonly code: ErrorCode, message: string) { super(message) }
}

/** Serves one inbound push stream: every frame must be a `push` some session here accepts from this peer. */
export async function handlePushStream (stream: Stream, holder: Holder, ctx: PushContext): Promise<void> {
  if (ctx.shutOut(holder)) {
    stream.abort(new RequestLimitError('this remote broke the wire protocol and is shut out for a while'))
    return
  }
  const channel = new MessageChannel(stream, ctx.frameLimits)
  let counted = false
  try {
    for (;;) {
      const msg = await channel.receive(AbortSignal.timeout(ctx.idleTimeoutMs))
      if (!counted) {
        // checked at the first frame (one frame's worth read, within the frame limits)
        counted = ctx.registry.openStream(holder.peer)
        if (!counted) throw new PushRefused('forbidden', `no session here accepts pushes from ${holder.peer}, or it holds a push stream for each already`)
      }
      if (msg.kind !== 'push') throw new PushRefused('bad_request', `expected push, got ${msg.kind}`)
      deliver(msg, holder, ctx)
    }
  } catch (err) {
    if (err instanceof ChannelClosedError) {
      channel.abort('push stream ended')
      return
    }
    await refusePush(channel, err, ctx, holder)
    if (err instanceof ProtocolError && !(err instanceof LimitExceededError)) {
      ctx.emit({ event: 'remote_banned', peer: holder.peer, ip: holder.ip, reason: err.message.slice(0, 200) })
      ctx.offended(holder)
    }
  } finally {
    if (counted) ctx.registry.closeStream(holder.peer)
  }
}

function deliver (msg: PushMessage, holder: Holder, ctx: PushContext): void {
  const acceptor = ctx.registry.find(msg.token)
  // one answer for every mismatch, so a prober learns nothing about which part was wrong
  if (acceptor === undefined || acceptor.from !== holder.peer || acceptor.sessionId !== msg.sessionId) {
    throw new PushRefused('forbidden', `no session here accepts pushes for session ${msg.sessionId} with this token from ${holder.peer}`)
  }
  const step: StepMessage = { kind: 'step', stepId: msg.stepId, position: msg.position, hidden: msg.hidden }
  if (!acceptor.inbox.deliver(step)) throw new PushRefused('busy', `session ${msg.sessionId} already holds ${PUSH_INBOX_CAPACITY} unprocessed pushed steps`)
}

async function refusePush (channel: MessageChannel, err: unknown, ctx: PushContext, holder: Holder): Promise<void> {
  const message = (err as Error).message
  const code: ErrorCode = err instanceof PushRefused
    ? err.code
    : err instanceof LimitExceededError ? 'too_long' : err instanceof ProtocolError ? 'bad_request' : (err as Error).name === 'TimeoutError' ? 'timeout' : 'internal'
  if (code === 'internal') ctx.log.error({ err, peer: holder.peer }, 'push stream failed')
  else ctx.log.debug({ code, message, peer: holder.peer }, 'push refused')
  try {
    await channel.send({ kind: 'error', code, message: message.slice(0, 1024) }, AbortSignal.timeout(1000))
    await channel.close(AbortSignal.timeout(1000))
  } catch {
    channel.abort('push refused')
  }
}

/** Opens a stream speaking PUSH_PROTOCOL to a peer. */
export type PushDialer = (peerId: string, multiaddrs: string[], signal: AbortSignal) => Promise<Stream>

/** A session's outbound push stream to the next hop. */
export class PushLink {
  private closed = false

  private constructor (readonly target: PushTarget, private readonly channel: MessageChannel, onBroken: (reason: string) => void) {
    // the next hop never answers a push; whatever it sends is a refusal, and an end is a loss
    channel.receive().then(
      (msg) => { if (!this.closed) onBroken(msg.kind === 'error' ? `${msg.code}: ${msg.message}` : `unexpected ${msg.kind}`) },
      (err: Error) => { if (!this.closed) onBroken(err.message) }
    )
  }

  static async open (dial: PushDialer, target: PushTarget, signal: AbortSignal, onBroken: (reason: string) => void): Promise<PushLink> {
    return new PushLink(target, new MessageChannel(await dial(target.peerId, target.multiaddrs, signal)), onBroken)
  }

  /** Pushes a step's output into the next hop's session. */
  async push (stepId: number, position: number, hidden: PushMessage['hidden'], signal: AbortSignal): Promise<void> {
    await this.channel.send({ kind: 'push', sessionId: this.target.sessionId, token: this.target.token, stepId, position, hidden }, signal)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    try {
      await this.channel.close(AbortSignal.timeout(1000))
    } catch {
      this.channel.abort('push link closed')
    }
  }
}
