// The direct data path: a session's step/result messages over a plain TCP socket instead of its
// libp2p stream, sealed with AES-256-GCM (node:crypto, synchronous). Measured on loopback (scripts/bench/
// hop-transport.ts): a libp2p stream (noise + yamux + three layers of message events) costs ~1 ms
// per 8 KiB round trip when both sides idle between round trips; this path ~0.5 ms.
//
// The key and a one-time token are exchanged over the authenticated, encrypted libp2p connection
// (DIRECT_PROTOCOL; messages.ts), so the socket inherits its trust: only the holder of the key can
// open it or write a frame on it.
//
//   handshake  client → peer: token (16 bytes) | GCM tag of an empty frame (client counter 0)
//              peer → client: GCM tag of an empty frame (peer counter 0)
//   frames     | length u32 BE | ciphertext | tag (16) |  — one encoded Message each
//
// Nonces: direction u32 (0 client → peer, 1 peer → client) | counter u64, counting from 1 after
// the handshake. The receiver uses its own count, so a replayed, dropped or reordered frame fails
// authentication, which closes the socket. Frames longer than the receiver's limit close it too.
import type { Socket } from 'node:net'
import { createCipheriv, createDecipheriv, timingSafeEqual } from 'node:crypto'
import { Arrivals, ChannelClosedError, type Channel } from './channel.ts'
import { decodeMessage, encodeMessage, DEFAULT_FRAME_LIMITS, DIRECT_TOKEN_BYTES, type FrameLimits, type Message } from './messages.ts'
import { FrameTooLargeError, MalformedFrameError, ProtocolError } from './errors.ts'

export type DirectRole = 'client' | 'peer'

const TAG_BYTES = 16
/** bytes of the client's hello: token + tag */
export const HELLO_BYTES = DIRECT_TOKEN_BYTES + TAG_BYTES
/** bytes of the peer's answer to a hello: a tag */
export const ACK_BYTES = TAG_BYTES
/** frames received but not yet asked for, beyond which the socket is paused */
const QUEUED_FRAMES_LIMIT = 4

function nonce (direction: number, counter: number): Buffer {
  const n = Buffer.alloc(12)
  n.writeUInt32BE(direction, 0)
  n.writeBigUInt64BE(BigInt(counter), 4)
  return n
}

function seal (key: Uint8Array, direction: number, counter: number, plain: Uint8Array): { body: Buffer, tag: Buffer } {
  const c = createCipheriv('aes-256-gcm', key, nonce(direction, counter))
  const body = c.update(plain)
  c.final()
  return { body, tag: c.getAuthTag() }
}

/** The plaintext of a sealed frame; MalformedFrameError when it does not authenticate. */
function unseal (key: Uint8Array, direction: number, counter: number, body: Uint8Array, tag: Uint8Array): Buffer {
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce(direction, counter))
    d.setAuthTag(tag)
    const out = d.update(body)
    d.final()
    return out
  } catch {
    throw new MalformedFrameError('a direct-path frame failed authentication (wrong key, replayed or out of order)')
  }
}

const CLIENT = 0
const PEER = 1

/** The client's first bytes on a direct socket. */
export function helloFor (token: Uint8Array, key: Uint8Array): Buffer {
  return Buffer.concat([token, seal(key, CLIENT, 0, new Uint8Array(0)).tag])
}

/** Whether `hello`'s proof was made with `key` (the token was already looked up). */
export function helloProves (hello: Uint8Array, key: Uint8Array): boolean {
  try {
    unseal(key, CLIENT, 0, new Uint8Array(0), hello.subarray(DIRECT_TOKEN_BYTES, HELLO_BYTES))
    return true
  } catch {
    return false
  }
}

/** The peer's answer to a valid hello. */
export function ackFor (key: Uint8Array): Buffer {
  return seal(key, PEER, 0, new Uint8Array(0)).tag
}

/** Whether `ack` is the peer's answer made with `key`. */
export function ackProves (ack: Uint8Array, key: Uint8Array): boolean {
  const expected = ackFor(key)
  return ack.length === expected.length && timingSafeEqual(ack, expected)
}

/** A message channel over an authenticated direct socket (after the handshake). */
export class DirectChannel implements Channel {
  private readonly limits: FrameLimits
  private sent = 0
  private received = 0
  private readonly out: number
  private readonly in: number
  /** bytes received and not yet cut into frames, in arrival order (joined once per frame, not per chunk) */
  private pending: Buffer[] = []
  private pendingBytes = 0
  private readonly frames: Uint8Array[] = []
  private ended: Error | null = null
  private readonly arrivals = new Arrivals()

  /** `leftover`: bytes read past the handshake */
  constructor (readonly socket: Socket, private readonly key: Uint8Array, role: DirectRole, limits: Partial<FrameLimits> = {}, leftover?: Buffer) {
    this.limits = { ...DEFAULT_FRAME_LIMITS, ...limits }
    this.out = role === 'client' ? CLIENT : PEER
    this.in = role === 'client' ? PEER : CLIENT
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => { this.append(chunk) })
    socket.on('error', (err) => { this.end(new ChannelClosedError(`direct socket failed: ${err.message}`)) })
    socket.on('close', () => { this.end(new ChannelClosedError('the remote closed the direct socket')) })
    socket.on('end', () => { this.end(new ChannelClosedError('the remote closed the direct socket')) })
    socket.resume()
    if (leftover !== undefined && leftover.length > 0) this.append(leftover)
    if (socket.destroyed) this.end(new ChannelClosedError('the direct socket is closed'))
  }

  async send (msg: Message, signal?: AbortSignal): Promise<void> {
    if (this.ended !== null) throw this.ended instanceof ChannelClosedError ? this.ended : new ChannelClosedError(this.ended.message)
    const { body, tag } = seal(this.key, this.out, ++this.sent, encodeMessage(msg))
    const prefix = Buffer.allocUnsafe(4)
    prefix.writeUInt32BE(body.length + TAG_BYTES)
    if (this.socket.write(Buffer.concat([prefix, body, tag]))) return
    await new Promise<void>((resolve, reject) => {
      const done = (err?: unknown): void => {
        this.socket.off('drain', done)
        this.socket.off('close', closed)
        signal?.removeEventListener('abort', aborted)
        if (err === undefined) resolve()
        else reject(err)
      }
      const closed = (): void => { done(new ChannelClosedError('the direct socket closed while sending')) }
      const aborted = (): void => { done(signal?.reason) }
      this.socket.once('drain', () => { done() })
      this.socket.once('close', closed)
      signal?.addEventListener('abort', aborted, { once: true })
    })
  }

  async receive (signal?: AbortSignal): Promise<Message> {
    for (;;) {
      const frame = this.frames.shift()
      if (frame !== undefined) {
        if (this.socket.isPaused() && this.frames.length < QUEUED_FRAMES_LIMIT) this.socket.resume()
        return decodeMessage(frame, this.limits)
      }
      if (this.ended !== null) throw this.ended
      await this.arrivals.wait(signal)
    }
  }

  async close (): Promise<void> {
    this.socket.end()
    this.socket.destroySoon()
  }

  abort (reason: string): void {
    this.end(new ChannelClosedError(reason))
    this.socket.destroy()
  }

  private append (chunk: Buffer): void {
    if (this.ended !== null) return
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    try {
      while (this.pendingBytes >= 4) {
        const length = this.head(4).readUInt32BE(0)
        if (length > this.limits.maxFrameBytes + TAG_BYTES) throw new FrameTooLargeError('frame', length - TAG_BYTES, this.limits.maxFrameBytes)
        if (length < TAG_BYTES) throw new MalformedFrameError(`a direct-path frame of ${length} bytes is shorter than its tag`)
        if (this.pendingBytes < 4 + length) break
        const frame = this.head(4 + length)
        this.frames.push(unseal(this.key, this.in, ++this.received, frame.subarray(4, 4 + length - TAG_BYTES), frame.subarray(4 + length - TAG_BYTES, 4 + length)))
        const rest = frame.subarray(4 + length)
        this.pendingBytes -= 4 + length
        if (rest.length > 0) this.pending[0] = rest
        else this.pending.shift()
      }
    } catch (err) {
      this.end(err as ProtocolError)
      this.socket.destroy()
      return
    }
    if (this.frames.length >= QUEUED_FRAMES_LIMIT) this.socket.pause()
    this.arrivals.wakeAll()
  }

  /** The pending bytes from the start, at least `bytes` of them in one buffer (there are that many). */
  private head (bytes: number): Buffer {
    if (this.pending[0].length < bytes) this.pending = [Buffer.concat(this.pending)]
    return this.pending[0]
  }

  private end (err: Error): void {
    if (this.ended !== null) return
    this.ended = err
    this.arrivals.wakeAll()
  }
}
