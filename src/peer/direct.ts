// The peer's side of the direct data path (protocol/direct.ts): a TCP listener for direct
// sockets, the one-time tokens that admit them, and the channel a session reads through.
//
// A session starts on its libp2p stream. Its client asks for a direct path (a `direct_request` on
// a DIRECT_PROTOCOL stream of the same connection, naming the session); the peer registers a
// one-time token with the client's key and answers with its port and the token. A socket that
// presents the token and proves the key within the handshake time is handed to the session, which
// switches to it when the first message arrives there (until then it reads both, so a client that
// gave up on the socket just carries on over the stream). Unknown or expired tokens, bad proofs,
// handshakes that take too long and sockets beyond the unauthenticated limit are closed at once.
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import type { Stream } from '@libp2p/interface'
import { Arrivals, ChannelClosedError, MessageChannel, type Channel } from '../protocol/channel.ts'
import { ProtocolError } from '../protocol/errors.ts'
import { DirectChannel, HELLO_BYTES, ackFor, helloProves } from '../protocol/direct.ts'
import { DIRECT_TOKEN_BYTES, type Message } from '../protocol/messages.ts'
import type { Logger } from '../routing/logger.ts'

export const directDefaults = {
  /** a token not presented within this is forgotten, ms */
  tokenTtlMs: 10_000,
  /** a socket must present its token and proof within this, ms */
  handshakeTimeoutMs: 2_000,
  /** sockets still in their handshake at once; more are closed on arrival */
  maxUnauthenticated: 32
}

interface Admit { key: Buffer, expiresAt: number, deliver: (socket: net.Socket) => void }

export class DirectListener {
  private readonly tokens = new Map<string, Admit>()
  private unauthenticated = 0

  private constructor (private readonly server: net.Server, readonly port: number, private readonly log: Logger, private readonly limits: typeof directDefaults) {}

  static async start (host: string, port: number, log: Logger, limits: Partial<typeof directDefaults> = {}): Promise<DirectListener> {
    const server = net.createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => { server.off('error', reject); resolve() })
    })
    const listener = new DirectListener(server, (server.address() as net.AddressInfo).port, log, { ...directDefaults, ...limits })
    server.on('connection', (socket) => { listener.admit(socket) })
    return listener
  }

  /** sockets in their handshake now */
  get handshaking (): number { return this.unauthenticated }

  /** A one-time token admitting one socket sealed with `key`, handed to `deliver`; `revoke` forgets it. */
  offer (key: Buffer, deliver: Admit['deliver']): { token: string, revoke: () => void } {
    const now = Date.now()
    for (const [t, a] of this.tokens) if (a.expiresAt <= now) this.tokens.delete(t)
    const token = randomBytes(DIRECT_TOKEN_BYTES).toString('base64')
    this.tokens.set(token, { key, expiresAt: now + this.limits.tokenTtlMs, deliver })
    return { token, revoke: () => { this.tokens.delete(token) } }
  }

  async close (): Promise<void> {
    this.tokens.clear()
    await new Promise<void>((resolve) => this.server.close(() => { resolve() }))
  }

  private admit (socket: net.Socket): void {
    if (this.unauthenticated >= this.limits.maxUnauthenticated) {
      this.refuse(socket, 'too many direct sockets in their handshake')
      return
    }
    this.unauthenticated++
    let settled = false
    let got = Buffer.alloc(0)
    const settle = (): void => {
      if (settled) return
      settled = true
      this.unauthenticated--
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('error', onEnd)
      socket.off('close', onEnd)
    }
    const timer = setTimeout(() => { settle(); this.refuse(socket, 'handshake timed out') }, this.limits.handshakeTimeoutMs)
    const onEnd = (): void => { settle(); socket.destroy() }
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk])
      if (got.length < HELLO_BYTES) return
      settle()
      // the client waits for the answer before it sends anything else
      if (got.length > HELLO_BYTES) { this.refuse(socket, 'bytes after the hello before the answer'); return }
      const token = got.subarray(0, DIRECT_TOKEN_BYTES).toString('base64')
      const admit = this.tokens.get(token)
      if (admit === undefined || admit.expiresAt <= Date.now()) { this.refuse(socket, 'unknown or expired token'); return }
      if (!helloProves(got, admit.key)) { this.refuse(socket, 'the hello does not prove the session key'); return }
      this.tokens.delete(token)
      socket.write(ackFor(admit.key))
      admit.deliver(socket)
    }
    socket.on('data', onData)
    socket.on('error', onEnd)
    socket.on('close', onEnd)
  }

  private refuse (socket: net.Socket, why: string): void {
    this.log.debug({ remote: socket.remoteAddress, why }, 'direct socket refused')
    socket.destroy()
  }
}

/**
 * A session's channel: its libp2p stream, until a direct socket delivers the first message; from
 * then on that socket. Replies go where the session's messages come from.
 */
export class UpgradableChannel implements Channel {
  private pending: DirectChannel | null = null
  private active: Channel
  /** readers waiting for a socket to be offered */
  private readonly offered = new Arrivals()
  /** closed or aborted: a socket that passes its handshake now is dropped */
  private ended = false

  constructor (private readonly stream: MessageChannel) {
    this.active = stream
  }

  /** whether the session runs over a direct socket */
  get direct (): boolean { return this.active !== this.stream }

  /** A direct socket for this session passed its handshake: it takes over when a message arrives on it. */
  offer (channel: DirectChannel): void {
    if (this.direct || this.ended) {
      channel.abort('this session already has a direct socket, or has ended')
      return
    }
    this.pending?.abort('replaced by a newer direct socket')
    this.pending = channel
    this.offered.wakeAll()
  }

  async send (msg: Message, signal?: AbortSignal): Promise<void> {
    await this.active.send(msg, signal)
  }

  async receive (signal?: AbortSignal): Promise<Message> {
    if (this.direct) return await this.active.receive(signal)
    // whichever comes first; the other read is abandoned without losing what it would have got
    const lost = new AbortController()
    const either = signal === undefined ? lost.signal : AbortSignal.any([signal, lost.signal])
    try {
      return await Promise.race([this.stream.receive(either), this.fromDirect(either)])
    } finally {
      lost.abort(new Error('the other source answered first'))
    }
  }

  async close (signal?: AbortSignal): Promise<void> {
    this.ended = true
    this.pending?.abort('session closed')
    if (this.direct) await this.active.close(signal)
    await this.stream.close(signal)
  }

  abort (reason: string): void {
    this.ended = true
    this.pending?.abort(reason)
    if (this.direct) this.active.abort(reason)
    this.stream.abort(reason)
  }

  /** The first message of an offered direct socket (waiting for one to be offered); switches to it. */
  private async fromDirect (signal: AbortSignal): Promise<Message> {
    for (;;) {
      const channel = this.pending ?? await this.nextOffer(signal)
      try {
        const msg = await channel.receive(signal)
        if (this.pending === channel) {
          this.pending = null
          this.active = channel
        }
        return msg
      } catch (err) {
        if (signal.aborted || err instanceof ProtocolError || !(err instanceof ChannelClosedError)) throw err
        // the client gave up on this socket before using it: carry on over the stream
        if (this.pending === channel) this.pending = null
      }
    }
  }

  private async nextOffer (signal: AbortSignal): Promise<DirectChannel> {
    while (this.pending === null) await this.offered.wait(signal)
    return this.pending
  }
}

/**
 * Serves one DIRECT_PROTOCOL stream: a `direct_request` for a live session of the same remote
 * gets a `direct_offer`; anything else an `error`.
 */
export async function handleDirectRequest (stream: Stream, remote: string, sessions: ReadonlyMap<string, { direct?: (key: Buffer) => { port: number, token: string } | null }>, timeoutMs: number): Promise<void> {
  const channel = new MessageChannel(stream, { maxFrameBytes: 1024 })
  try {
    const req = await channel.receive(AbortSignal.timeout(timeoutMs))
    if (req.kind !== 'direct_request') throw new Error(`expected direct_request, got ${req.kind}`)
    const offer = sessions.get(`${remote}/${req.sessionId}`)?.direct?.(Buffer.from(req.key, 'base64')) ?? null
    if (offer === null) {
      await channel.send({ kind: 'error', code: 'bad_request', message: `no open session ${req.sessionId} of yours takes a direct path here` }, AbortSignal.timeout(timeoutMs))
    } else {
      await channel.send({ kind: 'direct_offer', ...offer }, AbortSignal.timeout(timeoutMs))
    }
    await channel.close(AbortSignal.timeout(timeoutMs))
  } catch {
    channel.abort('direct request failed')
  }
}
