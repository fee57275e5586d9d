// Serves one inference session on one stream:
//   open → opened, then any number of step → result / truncate → truncated, then close.
// With server-to-server push (push.ts), a `push_route` → `push_routed` sets where steps may be
// pushed from and where outputs go: a pushed step runs exactly like a client's, and a session
// with a next hop pushes its output there and tells its client `pushed` instead of `result`.
// Anything unexpected gets an `error` message and closes this stream only; other sessions and
// the peer carry on.
import type { Stream, Connection } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { MessageChannel, ChannelClosedError, type Channel } from '../protocol/channel.ts'
import { DirectChannel } from '../protocol/direct.ts'
import { ProtocolError, LimitExceededError } from '../protocol/errors.ts'
import { DEFAULT_FRAME_LIMITS, type ErrorCode, type FrameLimits, type Message, type OpenMessage, type PushRouteMessage, type StepMessage } from '../protocol/messages.ts'
import type { ModelConfig } from '../shards/config.ts'
import { EngineInputError } from '../shards/errors.ts'
import type { WorkerSpanEngine } from '../shards/worker/engine-client.ts'
import type { Logger } from '../routing/logger.ts'
import type { Admission, EvictionReason, Holder, RefusalReason } from './admission.ts'
import { reservationTokens } from './admission.ts'
import { peerDefaults, type Fault } from './config.ts'
import { RequestLimitError, type RequestLimiter } from './rate-limit.ts'
import { PushInbox, PushLink, type PushDialer, type PushRegistry } from './push.ts'
import { UpgradableChannel, type DirectListener } from './direct.ts'

export interface SessionContext {
  /** the loaded span (it changes when the peer moves; a session keeps the one it opened on) */
  engine: () => WorkerSpanEngine
  model: ModelConfig
  modelId: string
  /** slots and KV budget, shared fairly between remotes */
  admission: Admission
  /** a session with no message for this long is closed, ms */
  idleTimeoutMs: number
  /** a session with no step this long after `open` is closed, ms */
  firstStepTimeoutMs: number
  /** reservations grow by this many tokens at a time */
  reserveChunkTokens: number
  fault?: Fault
  /** whether the fault hits the step being served (called once per step; default: always) */
  faultDue?: () => boolean
  log: Logger
  /** live sessions, keyed by remote peer + session id */
  sessions: Map<string, LiveSession>
  /** false while draining (shutting down or moving): new sessions and steps get `draining` */
  isServing: () => boolean
  emit: (event: Record<string, unknown>) => void
  /** per-remote-peer limits on open streams, session opens and message rate */
  limiter: RequestLimiter
  /** a remote broke the wire protocol (after it was told why): the peer shuts it out */
  offended: (holder: Holder) => void
  /** whether a remote is shut out now (its streams are reset unread) */
  shutOut: (holder: Holder) => boolean
  /** measurements for metrics (optional) */
  observer?: SessionObserver
  /** sessions accepting pushed steps, by token */
  pushes: PushRegistry
  /** opens a push stream to the next hop */
  dialPush: PushDialer
  /** this peer's id (a session cannot push to its own peer) */
  selfId: string
  /** the direct data path's listener (absent: sessions stay on their streams) */
  direct?: DirectListener
}

/** What the session handler reports as it goes (the peer's metrics implement it). */
export interface SessionObserver {
  opened: () => void
  /** an `open` was refused (busy, draining, wrong model, …) */
  refused: (code: ErrorCode) => void
  /** an `open` or a step's reservation growth was refused for lack of slots, budget or fair share */
  refusedShare: (reason: RefusalReason, phase: 'open' | 'step') => void
  /** the peer closed a session: to make room, or because it went unused */
  evicted: (reason: EvictionReason) => void
  /** an open session ended with an error */
  ended: (code: ErrorCode) => void
  /** a remote hit a per-peer limit: a stream refused (streams), an open refused (opens), a read delayed (messages), shut out (banned) */
  limited: (limit: Limit) => void
  step: (positions: number, seconds: number) => void
}

export type Limit = 'streams' | 'opens' | 'messages' | 'banned'

export interface LiveSession {
  key: string
  /** hands the session back: its next step is answered with a `draining` error */
  handBack: () => void
  /** ends the session now (it is idle): its client is told `busy` and moves elsewhere */
  evict: (reason: EvictionReason) => void
  done: Promise<void>
  /** a one-time direct socket for this session sealed with `key` (null: not now) */
  direct?: (key: Buffer) => { port: number, token: string } | null
}

class SessionEnd extends Error {
  constructor (readonly code: ErrorCode, message: string) { super(message) }
}

/** The peer ends a session it holds for nothing: the client is told why, the metric counts it. */
class Evicted extends SessionEnd {
  constructor (readonly reason: EvictionReason, message: string) { super(reason === 'pressure' ? 'busy' : 'timeout', message) }
}

export async function handleSession (stream: Stream, connection: Connection, ctx: SessionContext): Promise<void> {
  const holder = holderOf(connection)
  const remote = holder.peer
  if (ctx.shutOut(holder)) {
    stream.abort(new RequestLimitError('this remote broke the wire protocol and is shut out for a while'))
    return
  }
  if (!ctx.limiter.streams.acquire(remote)) {
    // refused before anything is read: a flood of streams costs one counter check each
    ctx.observer?.limited('streams')
    stream.abort(new RequestLimitError(`this remote holds ${ctx.limiter.limits.streamsPerPeer} session streams already`))
    return
  }
  try {
    await serveSession(stream, holder, ctx)
  } catch (err) {
    if (!(err instanceof ProtocolError) || err instanceof LimitExceededError) throw err
    // a malformed, oversized or unknown frame: nothing an honest client sends
    ctx.observer?.limited('banned')
    ctx.emit({ event: 'remote_banned', peer: remote, ip: holder.ip, reason: err.message.slice(0, 200) })
    ctx.offended(holder)
  } finally {
    ctx.limiter.streams.release(remote)
  }
}

async function serveSession (stream: Stream, holder: Holder, ctx: SessionContext): Promise<void> {
  const limits = frameLimitsFor(ctx.model)
  const channel = new UpgradableChannel(new MessageChannel(stream, limits))
  /** the outstanding direct-socket token, revoked when the session ends */
  const directToken: { current: { revoke: () => void } | null } = { current: null }
  const remote = holder.peer
  let key: string | null = null
  let engine: WorkerSpanEngine | null = null
  let steps = 0
  let opened = false
  let tokens = 0
  let handedBack = false
  /** pushed steps for this session, once its client allows pushes (`push_route` with `from`) */
  const inbox = new PushInbox()
  /** the token pushes must carry (null: none accepted) and the link outputs are pushed over (null: answered with `result`) */
  const push: { token: string | null, link: PushLink | null, pushed: number } = { token: null, link: null, pushed: 0 }
  const evicted = new AbortController()
  const finished = Promise.withResolvers<void>()
  /** a wire-protocol violation, rethrown once the session is cleaned up (the caller bans its sender) */
  let violation: ProtocolError | null = null
  try {
    const open = await receive(channel, ctx.firstStepTimeoutMs, 'no open', evicted.signal)
    if (open.kind !== 'open') throw new SessionEnd('bad_request', `expected open, got ${open.kind}`)
    if (ctx.limiter.opens.take(remote, Date.now()) > 0) {
      ctx.observer?.limited('opens')
      throw new SessionEnd('busy', `too many session opens: at most ${ctx.limiter.limits.opensPerPeerPerSecond}/s per remote peer; retry later`)
    }
    key = `${remote}/${open.sessionId}`
    engine = admit(open, key, holder, ctx)
    const sessionKey = key
    ctx.sessions.set(key, {
      key,
      handBack: () => { handedBack = true },
      evict: (reason) => { evicted.abort(new Evicted(reason, 'evicted: this idle session gave its slot to another client; continue elsewhere')) },
      done: finished.promise,
      direct: (directKey) => {
        const listener = ctx.direct
        // not before the session is open, not once it runs direct, not with pushes (those stay on libp2p)
        if (listener === undefined || !opened || channel.direct || push.token !== null || push.link !== null) return null
        directToken.current?.revoke()
        const offer = listener.offer(directKey, (socket) => { channel.offer(new DirectChannel(socket, directKey, 'peer', limits)) })
        directToken.current = offer
        return { port: listener.port, token: offer.token }
      }
    })
    await engine.open(key, open.maxLength, open.end)
    await channel.send({ kind: 'opened', sessionId: open.sessionId, start: open.start, end: open.end, maxLength: open.maxLength }, AbortSignal.timeout(ctx.idleTimeoutMs))
    opened = true
    ctx.observer?.opened()
    ctx.emit({ event: 'session_opened', sessionId: open.sessionId, peer: remote, ip: holder.ip, start: open.start, end: open.end, maxLength: open.maxLength })
    for (;;) {
      await paced(remote, ctx, evicted.signal)
      const pushes = push.token !== null ? inbox : undefined
      const msg = steps === 0
        ? await receive(channel, ctx.firstStepTimeoutMs, 'no step', evicted.signal, 'no_first_step', pushes)
        : await receive(channel, ctx.idleTimeoutMs, 'no message', evicted.signal, 'idle', pushes)
      if (msg.kind === 'close') break
      if (handedBack || !ctx.isServing()) throw new SessionEnd('draining', 'this peer is shutting down or moving to other blocks; continue elsewhere')
      if (msg.kind === 'step') {
        const [batch, n, hidden] = msg.hidden.shape
        if (batch !== 1 || hidden !== engine.config.hiddenSize) throw new SessionEnd('bad_request', `hidden states must be (1, n, ${engine.config.hiddenSize}), got (${msg.hidden.shape.join(', ')})`)
        if (ctx.fault === 'drop' && steps >= peerDefaults.dropFaultSteps) {
          ctx.log.warn({ sessionId: open.sessionId }, 'FAULT INJECTION: dropping the session stream')
          channel.abort('fault injection: drop')
          return
        }
        ctx.admission.stepStarted(sessionKey, Date.now())
        try {
          grow(sessionKey, Math.min(tokens + n, open.maxLength), open.maxLength, engine.info.kvBytesPerToken, ctx)
          const faulty = ctx.fault !== undefined && (ctx.faultDue?.() ?? true)
          if (faulty && ctx.fault === 'slow') await new Promise((resolve) => setTimeout(resolve, peerDefaults.slowFaultMs))
          const t0 = performance.now()
          const out = await engine.step(sessionKey, msg.hidden.data, msg.position)
          ctx.observer?.step(n, (performance.now() - t0) / 1000)
          if (faulty && ctx.fault === 'corrupt') for (let i = 0; i < out.length; i += 7) out[i] += 0.5
          steps++
          tokens += n
          await answer(msg, { dtype: msg.hidden.dtype, shape: [1, n, hidden], data: out })
        } finally {
          ctx.admission.stepEnded(sessionKey, Date.now())
        }
      } else if (msg.kind === 'push_route') {
        ctx.admission.touch(sessionKey, Date.now())
        await route(msg, open.sessionId)
        await channel.send({ kind: 'push_routed' }, AbortSignal.timeout(ctx.idleTimeoutMs))
      } else if (msg.kind === 'truncate') {
        ctx.admission.touch(sessionKey, Date.now())
        await engine.truncate(sessionKey, msg.length)
        tokens = msg.length
        await channel.send({ kind: 'truncated', length: msg.length }, AbortSignal.timeout(ctx.idleTimeoutMs))
      } else {
        throw new SessionEnd('bad_request', `unexpected ${msg.kind} message in a session`)
      }
    }
    await channel.close()
  } catch (err) {
    if (err instanceof SessionEnd && err.code === 'push_failed') ctx.emit({ event: 'push_failed', peer: remote, to: push.link?.target.peerId, reason: err.message.slice(0, 200) })
    if (err instanceof Evicted) {
      ctx.observer?.evicted(err.reason)
      ctx.emit({ event: 'session_evicted', peer: remote, ip: holder.ip, reason: err.reason, steps })
    }
    const code = await refuse(channel, err, ctx, remote)
    if (code !== null) {
      if (opened) ctx.observer?.ended(code)
      else ctx.observer?.refused(code)
    }
    violation = err instanceof ProtocolError ? err : null
  } finally {
    if (push.token !== null) ctx.pushes.drop(push.token)
    await push.link?.close()
    directToken.current?.revoke()
    if (key !== null && ctx.sessions.get(key)?.done === finished.promise) {
      ctx.sessions.delete(key)
      ctx.admission.release(key)
      await engine?.close(key).catch(() => false)
      ctx.emit({ event: 'session_closed', peer: remote, steps, tokens, direct: channel.direct, ...(push.pushed + inbox.delivered > 0 ? { pushedOut: push.pushed, pushedIn: inbox.delivered } : {}) })
    }
    finished.resolve()
  }
  if (violation !== null) throw violation

  /** A step's output: pushed to the next hop (and `pushed` to the client), or a `result` to the client. */
  async function answer (step: StepMessage, output: StepMessage['hidden']): Promise<void> {
    const position = step.position + output.shape[1]
    const link = push.link
    if (link === null) {
      await channel.send({ kind: 'result', stepId: step.stepId, position, hidden: output }, AbortSignal.timeout(ctx.idleTimeoutMs))
      return
    }
    try {
      await link.push(step.stepId, step.position, output, AbortSignal.timeout(ctx.idleTimeoutMs))
    } catch (err) {
      throw new SessionEnd('push_failed', `could not push to ${link.target.peerId}: ${(err as Error).message}`)
    }
    push.pushed++
    await channel.send({ kind: 'pushed', stepId: step.stepId, position }, AbortSignal.timeout(ctx.idleTimeoutMs))
  }

  /** Applies a `push_route`: replaces whom pushes are accepted from and where outputs go. */
  async function route (msg: PushRouteMessage, sessionId: string): Promise<void> {
    if (push.token !== null) ctx.pushes.drop(push.token)
    push.token = null
    await push.link?.close()
    push.link = null
    if (msg.from !== undefined) {
      if (!ctx.pushes.accept(msg.from.token, { sessionId, from: msg.from.peerId, inbox })) throw new SessionEnd('bad_request', 'this push token is taken by another session: choose a fresh random one')
      push.token = msg.from.token
    }
    if (msg.to === undefined) return
    if (msg.to.peerId === ctx.selfId) throw new SessionEnd('bad_request', 'a session cannot push to a session of its own peer')
    const to = msg.to
    try {
      push.link = await PushLink.open(ctx.dialPush, to, AbortSignal.timeout(ctx.firstStepTimeoutMs), (reason) => {
        evicted.abort(new SessionEnd('push_failed', `the push link to ${to.peerId} broke: ${reason}`))
      })
    } catch (err) {
      throw new SessionEnd('push_failed', `could not open a push stream to ${to.peerId}: ${(err as Error).message}`)
    }
  }
}

/** The remote's peer id and address (see remoteAddressOf). */
export function holderOf (connection: Connection): Holder {
  return { peer: connection.remotePeer.toString(), ip: remoteAddressOf(connection.remoteAddr) }
}

/**
 * What one remote "address" is for fair shares: its IPv4 address, or its IPv6 /64 (one host
 * usually holds a whole /64); '' for relayed connections, whose IP is the relay's.
 */
export function remoteAddressOf (addr: Multiaddr): string {
  const parts = addr.getComponents()
  if (parts.some((c) => c.name === 'p2p-circuit')) return ''
  const ip = parts.find((c) => c.name === 'ip4' || c.name === 'ip6')
  if (ip?.value === undefined) return ''
  if (ip.name === 'ip4') return ip.value
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip.value)
  if (v4 !== null) return v4[1]
  return `${expandIp6(ip.value).slice(0, 4).join(':')}::/64`
}

/** "2001:db8::1" → the eight hextets, without leading zeros */
function expandIp6 (ip: string): string[] {
  const [head, tail] = ip.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? [] : Array.from({ length: 8 - left.length - right.length }, () => '0')
  return [...left, ...zeros, ...right].map((h) => h.toLowerCase().replace(/^0+(?=.)/, ''))
}

/**
 * The largest frames this peer accepts: one step of at most the model's positions of its hidden
 * size, batch 1 — so a hostile client cannot make it buffer more than one real step's bytes.
 */
export function frameLimitsFor (cfg: ModelConfig): FrameLimits {
  return {
    ...DEFAULT_FRAME_LIMITS,
    maxBatch: 1,
    maxHidden: cfg.hiddenSize,
    maxPositions: cfg.maxPositions,
    maxFrameBytes: Math.min(DEFAULT_FRAME_LIMITS.maxFrameBytes, cfg.maxPositions * cfg.hiddenSize * 4 + 64 * 1024)
  }
}

/**
 * Checks an `open` against model, state, span, slots and fair share; reserves its first chunk of
 * KV cache (evicting idle sessions of others when full). Returns the engine to run it on.
 */
function admit (open: OpenMessage, key: string, holder: Holder, ctx: SessionContext): WorkerSpanEngine {
  const engine = ctx.engine()
  if (open.modelId !== ctx.modelId) throw new SessionEnd('wrong_model', `this peer serves model ${ctx.modelId}, not ${open.modelId}`)
  if (!ctx.isServing()) throw new SessionEnd('draining', 'this peer is shutting down or moving to other blocks')
  if (open.start !== engine.start || open.end <= open.start || open.end > engine.end) {
    throw new SessionEnd('bad_request', `this peer serves blocks [${engine.start}, ${engine.end}); sessions must start at ${engine.start} and end within it, got [${open.start}, ${open.end})`)
  }
  if (open.maxLength > engine.config.maxPositions) throw new SessionEnd('too_long', `max length ${open.maxLength} exceeds the model's ${engine.config.maxPositions} positions`)
  if (ctx.sessions.has(key)) throw new SessionEnd('bad_request', `session ${open.sessionId} is already open`)
  const bytes = reservationTokens(0, open.maxLength, ctx.reserveChunkTokens) * engine.info.kvBytesPerToken
  const verdict = ctx.admission.open(key, holder, bytes, Date.now())
  if (!verdict.ok) {
    ctx.observer?.refusedShare(verdict.reason, 'open')
    throw new SessionEnd('busy', verdict.message)
  }
  evict(verdict.evicted, ctx)
  return engine
}

/** Grows a session's reservation to hold `needed` positions (plus a margin); `busy` when it cannot. */
function grow (key: string, needed: number, maxLength: number, kvBytesPerToken: number, ctx: SessionContext): void {
  const target = reservationTokens(needed, maxLength, ctx.reserveChunkTokens) * kvBytesPerToken
  const verdict = ctx.admission.growTo(key, needed * kvBytesPerToken, target, Date.now())
  if (!verdict.ok) {
    ctx.observer?.refusedShare(verdict.reason, 'step')
    throw new SessionEnd('busy', `cannot grow this session to ${needed} positions: ${verdict.message}`)
  }
  evict(verdict.evicted, ctx)
}

/** Ends sessions the admission has already released to make room. */
function evict (keys: string[], ctx: SessionContext): void {
  for (const k of keys) ctx.sessions.get(k)?.evict('pressure')
}

/**
 * The next message, within `timeoutMs` (then the session is closed as unused: `eviction` names
 * why for the metrics) or until the peer evicts the session.
 */
async function receive (channel: Channel, timeoutMs: number, what: string, evicted: AbortSignal, eviction?: EvictionReason, pushes?: PushInbox): Promise<Message> {
  const timer = new AbortController()
  const t = setTimeout(() => {
    timer.abort(eviction !== undefined
      ? new Evicted(eviction, `${what} for ${timeoutMs} ms; session closed`)
      : new SessionEnd('timeout', `${what} for ${timeoutMs} ms; session closed`))
  }, timeoutMs)
  const onEvict = (): void => { timer.abort(evicted.reason) }
  evicted.addEventListener('abort', onEvict, { once: true })
  if (evicted.aborted) onEvict()
  try {
    if (pushes === undefined) return await channel.receive(timer.signal)
    // whichever comes first; the other read is abandoned without losing what it would have got
    const lost = new AbortController()
    const either = AbortSignal.any([timer.signal, lost.signal])
    try {
      return await Promise.race([channel.receive(either), pushes.next(either)])
    } finally {
      lost.abort(new Error('the other source answered first'))
    }
  } catch (err) {
    if (timer.signal.aborted && timer.signal.reason instanceof SessionEnd) throw timer.signal.reason
    throw err
  } finally {
    clearTimeout(t)
    evicted.removeEventListener('abort', onEvict)
  }
}

/**
 * Waits, before reading a session's next message, until its remote peer may send one more (its
 * message bucket has a token): a remote over its rate is slowed down, not served faster.
 */
async function paced (remote: string, ctx: SessionContext, evicted: AbortSignal): Promise<void> {
  for (let wait = ctx.limiter.messages.take(remote, Date.now()); wait > 0; wait = ctx.limiter.messages.take(remote, Date.now())) {
    ctx.observer?.limited('messages')
    await new Promise<void>((resolve) => {
      const done = (): void => { clearTimeout(t); evicted.removeEventListener('abort', done); resolve() }
      const t = setTimeout(done, wait)
      evicted.addEventListener('abort', done, { once: true })
    })
    if (evicted.aborted) throw evicted.reason
  }
}

/** Tells the client why the session ends (when the stream still works) and closes it. */
async function refuse (channel: Channel, err: unknown, ctx: SessionContext, remote: string): Promise<ErrorCode | null> {
  if (err instanceof ChannelClosedError) {
    // the remote went away or the stream broke: release our side too (a no-op when already closed)
    channel.abort('stream failed')
    return null
  }
  let code: ErrorCode = 'internal'
  const message = (err as Error).message
  if (err instanceof SessionEnd) code = err.code
  else if (err instanceof LimitExceededError) code = 'too_long'
  else if (err instanceof ProtocolError) code = 'bad_request'
  // a send timed out: the remote stopped reading
  else if ((err as Error).name === 'TimeoutError') code = 'timeout'
  else if (err instanceof EngineInputError) code = /position .* but the session holds/.test(message) ? 'desync' : 'bad_request'
  if (code === 'internal') ctx.log.error({ err, peer: remote }, 'session failed')
  else ctx.log.debug({ code, message, peer: remote }, 'session refused or ended')
  try {
    await channel.send({ kind: 'error', code, message: message.slice(0, 1024) }, AbortSignal.timeout(1000))
    await channel.close(AbortSignal.timeout(1000))
  } catch {
    channel.abort('session ended')
  }
  return code
}
