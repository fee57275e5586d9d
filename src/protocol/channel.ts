// A message channel over one libp2p stream: length-prefixed frames (unsigned varint length)
// each holding one encoded Message. Frames over the receiver's limit are refused before they
// are buffered; a malformed frame surfaces as a ProtocolError from `receive`.
//
// Frames are cut from the stream's `message` events as they arrive and handed to a waiting
// `receive` directly. (Reading through the stream's async iterator and it-length-prefixed's
// decoder put a pushable and two async generators between a frame's arrival and its reader:
// ~0.1 ms per message on loopback, paid twice per hop per token.) Frames that arrive before
// they are asked for wait in a queue; past QUEUED_FRAMES_LIMIT of them the channel stops
// reading (the stream is paused, so yamux flow control holds the sender back) until the reader
// catches up.
import * as lp from 'it-length-prefixed'
import { Uint8ArrayList } from 'uint8arraylist'
import type { Stream, StreamMessageEvent, StreamCloseEvent } from '@libp2p/interface'
import { decodeMessage, encodeMessage, DEFAULT_FRAME_LIMITS, type FrameLimits, type Message } from './messages.ts'
import { FrameTooLargeError, MalformedFrameError, ProtocolError } from './errors.ts'

/** The remote closed the stream, or the channel was aborted. */
export class ChannelClosedError extends Error {
  override name = 'ChannelClosedError'
}

/** a frame's length prefix: an unsigned varint of at most this many bytes */
const MAX_PREFIX_BYTES = 8
/** frames received but not yet asked for, beyond which the channel stops reading the stream */
const QUEUED_FRAMES_LIMIT = 4

/** Receives waiting for the next frame (or the end): `wait` settles on `wakeAll` or rejects on abort. */
export class Arrivals {
  private readonly waiting = new Set<() => void>()

  async wait (signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    const onAbort = (): void => { reject(signal?.reason) }
    this.waiting.add(resolve)
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      await promise
    } finally {
      this.waiting.delete(resolve)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  wakeAll (): void {
    for (const wake of this.waiting) wake()
  }
}

/** Cuts length-prefixed frames out of a stream's bytes; ends with the stream or the first bad prefix. */
class FrameQueue {
  private readonly bytes = new Uint8ArrayList()
  /** length of the frame being received, or -1 while its prefix is incomplete */
  private frameLength = -1
  private readonly frames: Uint8Array[] = []
  /** why no frame will follow the queued ones */
  private ended: Error | null = null
  /** receives waiting for a frame (normally one) */
  private readonly arrivals = new Arrivals()
  private readonly detach: () => void

  constructor (private readonly stream: Stream, private readonly maxFrameBytes: number) {
    const onMessage = (evt: StreamMessageEvent): void => { this.append(evt.data) }
    const onClose = (evt: StreamCloseEvent): void => { this.end(evt.error) }
    const onRemoteEnd = (): void => { this.end() }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
    stream.addEventListener('remoteCloseWrite', onRemoteEnd)
    this.detach = () => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      stream.removeEventListener('remoteCloseWrite', onRemoteEnd)
    }
    if (stream.readStatus === 'closed' || stream.readStatus === 'closing') this.end()
  }

  /** The next frame; rejects once the stream has ended (or broke the framing) and no frame is left. */
  async next (signal?: AbortSignal): Promise<Uint8Array> {
    for (;;) {
      const frame = this.frames.shift()
      if (frame !== undefined) {
        if (this.stream.readStatus === 'paused' && this.frames.length < QUEUED_FRAMES_LIMIT) this.stream.resume()
        return frame
      }
      if (this.ended !== null) throw this.ended
      await this.arrivals.wait(signal)
    }
  }

  private append (data: Uint8Array | Uint8ArrayList): void {
    if (this.ended !== null) return
    this.bytes.append(data)
    try {
      this.split()
    } catch (err) {
      this.end(err as Error, true)
      return
    }
    if (this.frames.length >= QUEUED_FRAMES_LIMIT && this.stream.readStatus === 'readable') this.stream.pause()
    this.arrivals.wakeAll()
  }

  private split (): void {
    for (;;) {
      if (this.frameLength < 0) {
        const prefix = readVarint(this.bytes)
        if (prefix === null) return
        if (prefix.value > this.maxFrameBytes) throw new FrameTooLargeError('frame', prefix.value, this.maxFrameBytes)
        this.bytes.consume(prefix.bytes)
        this.frameLength = prefix.value
      }
      if (this.bytes.byteLength < this.frameLength) return
      this.frames.push(this.bytes.subarray(0, this.frameLength))
      this.bytes.consume(this.frameLength)
      this.frameLength = -1
    }
  }

  /** No frame follows: the stream ended (cleanly, with `err`, or with a partial frame), or the framing broke. */
  private end (err?: Error, protocol = false): void {
    if (this.ended !== null) return
    this.detach()
    this.ended = protocol && err !== undefined
      ? err
      : err !== undefined
        ? new ChannelClosedError(`stream failed: ${err.message}`)
        : this.bytes.byteLength > 0 || this.frameLength >= 0
          ? new ChannelClosedError('stream failed: the stream ended inside a frame')
          : new ChannelClosedError('the remote closed the stream')
    this.arrivals.wakeAll()
  }
}

/** An unsigned varint at the start of `bytes`: null while incomplete; MalformedFrameError past MAX_PREFIX_BYTES. */
function readVarint (bytes: Uint8ArrayList): { value: number, bytes: number } | null {
  let value = 0
  for (let i = 0; i < MAX_PREFIX_BYTES; i++) {
    if (i >= bytes.byteLength) return null
    const b = bytes.get(i)
    value += (b & 0x7f) * 2 ** (7 * i)
    if ((b & 0x80) === 0) return { value, bytes: i + 1 }
  }
  throw new MalformedFrameError(`the frame length prefix is not a valid varint of at most ${MAX_PREFIX_BYTES} bytes`)
}

/** What a session needs of its transport: a libp2p stream (MessageChannel) or a direct socket (direct.ts). */
export interface Channel {
  /** Sends one message, waiting for the transport to drain when its buffer is full. */
  send: (msg: Message, signal?: AbortSignal) => Promise<void>
  /** The next message; throws ChannelClosedError at end of stream, ProtocolError on bad frames. */
  receive: (signal?: AbortSignal) => Promise<Message>
  /** Closes our writing side gracefully. */
  close: (signal?: AbortSignal) => Promise<void>
  abort: (reason: string) => void
}

export class MessageChannel implements Channel {
  private readonly frames: FrameQueue
  private readonly limits: FrameLimits

  constructor (readonly stream: Stream, limits: Partial<FrameLimits> = {}) {
    this.limits = { ...DEFAULT_FRAME_LIMITS, ...limits }
    // the length prefix itself is checked first, so an oversized frame is never buffered
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, this.limits.maxFrameBytes + 16)
    this.frames = new FrameQueue(stream, this.limits.maxFrameBytes)
  }

  /** Sends one message, waiting for the transport to drain when its buffer is full. */
  async send (msg: Message, signal?: AbortSignal): Promise<void> {
    if (!this.stream.send(lp.encode.single(encodeMessage(msg)))) await this.stream.onDrain({ signal })
  }

  /** The next message; throws ChannelClosedError at end of stream, ProtocolError on bad frames. */
  async receive (signal?: AbortSignal): Promise<Message> {
    try {
      return decodeMessage(await this.frames.next(signal), this.limits)
    } catch (err) {
      if (err instanceof ProtocolError || err instanceof ChannelClosedError || signal?.aborted === true) throw err
      throw new ChannelClosedError(`stream failed: ${(err as Error).message}`)
    }
  }

  /** Closes our writing side gracefully (the remote sees end of stream). */
  async close (signal?: AbortSignal): Promise<void> {
    try {
      await this.stream.close({ signal })
    } catch {
      this.stream.abort(new ChannelClosedError('close failed'))
    }
  }

  abort (reason: string): void {
    this.stream.abort(new ChannelClosedError(reason))
  }
}
