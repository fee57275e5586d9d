// A message channel over one libp2p stream: length-prefixed frames (unsigned varint length)
// each holding one encoded Message. Frames over the receiver's limit are refused before they
// are buffered; a malformed frame surfaces as a ProtocolError from `receive`.
import * as lp from 'it-length-prefixed'
import type { Stream } from '@libp2p/interface'
import { decodeMessage, encodeMessage, DEFAULT_FRAME_LIMITS, type FrameLimits, type Message } from './messages.ts'
import { FrameTooLargeError, MalformedFrameError, ProtocolError } from './errors.ts'

/** The remote closed the stream, or the channel was aborted. */
export class ChannelClosedError extends Error {
  override name = 'ChannelClosedError'
}

export class MessageChannel {
  private readonly frames: AsyncIterator<{ subarray: () => Uint8Array } | Uint8Array>
  private readonly limits: FrameLimits
  /** a read still under way when a `receive` was aborted: the next `receive` takes it over, so no frame is lost */
  private pending: Promise<IteratorResult<{ subarray: () => Uint8Array } | Uint8Array>> | null = null

  constructor (readonly stream: Stream, limits: Partial<FrameLimits> = {}) {
    this.limits = { ...DEFAULT_FRAME_LIMITS, ...limits }
    // the length prefix itself is checked first, so an oversized frame is never buffered
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, this.limits.maxFrameBytes + 16)
    this.frames = lp.decode(stream, { maxDataLength: this.limits.maxFrameBytes })[Symbol.asyncIterator]()
  }

  /** Sends one message, waiting for the transport to drain when its buffer is full. */
  async send (msg: Message, signal?: AbortSignal): Promise<void> {
    if (!this.stream.send(lp.encode.single(encodeMessage(msg)))) await this.stream.onDrain({ signal })
  }

  /** The next message; throws ChannelClosedError at end of stream, ProtocolError on bad frames. */
  async receive (signal?: AbortSignal): Promise<Message> {
    signal?.throwIfAborted()
    let onAbort: (() => void) | undefined
    const aborted = new Promise<never>((_resolve, reject) => {
      if (signal === undefined) return
      onAbort = () => { reject(signal.reason) }
      signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      if (this.pending === null) {
        this.pending = this.frames.next()
        // a read left behind by an aborted receive may fail unobserved: its error surfaces at the next receive
        this.pending.catch(() => {})
      }
      const next = await Promise.race([this.pending, aborted])
      this.pending = null
      if (next.done === true) throw new ChannelClosedError('the remote closed the stream')
      const bytes = next.value instanceof Uint8Array ? next.value : next.value.subarray()
      return decodeMessage(bytes, this.limits)
    } catch (err) {
      if (!(signal?.aborted === true)) this.pending = null
      if ((err as Error).name === 'InvalidDataLengthError') throw new FrameTooLargeError('frame', -1, this.limits.maxFrameBytes)
      if ((err as Error).name === 'InvalidDataLengthLengthError') throw new MalformedFrameError('the frame length prefix is not a valid varint of at most 8 bytes')
      if (err instanceof ProtocolError || err instanceof ChannelClosedError || signal?.aborted === true) throw err
      throw new ChannelClosedError(`stream failed: ${(err as Error).message}`)
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
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
