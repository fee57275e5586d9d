// The info protocol: ask a peer for its current signed record.
//
//   client: opens a stream on INFO_PROTOCOL and closes its write side (no request body)
//   server: | length (unsigned varint, ≤ 3 bytes) | signed record (≤ MAX_INFO_FRAME_BYTES) |, then closes
//
// The server ignores anything a client sends; the client rejects a frame over the size limit
// before reading it. The bytes are returned unverified: callers run verifyRecord on them.
import { INFO_PROTOCOL } from '../protocol/messages.ts'
import * as lp from 'it-length-prefixed'
import { Uint8ArrayList } from 'uint8arraylist'
import { withTimeout } from './abort.ts'
import { retryIfClosedUnderUs } from './closed-under-us.ts'
import { componentLogger, type Logger } from './logger.ts'
import { MAX_RECORD_BYTES } from './records.ts'
import type { SwarmNode } from './node.ts'
import type { PeerId, Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export { INFO_PROTOCOL }
export const MAX_INFO_FRAME_BYTES = MAX_RECORD_BYTES
/** default bound on one info exchange, including the dial, ms */
export const DEFAULT_INFO_TIMEOUT_MS = 3_000
/** an unsigned varint of this many bytes holds up to 2^21 - 1, above MAX_INFO_FRAME_BYTES */
const MAX_LENGTH_PREFIX_BYTES = 3
/** parallel info streams a single connection may open to us */
const MAX_INBOUND_INFO_STREAMS = 4

export class InfoError extends Error {
  override name = 'InfoError'
}
/** The peer announced a frame larger than MAX_INFO_FRAME_BYTES. */
export class InfoFrameTooLargeError extends InfoError {
  override name = 'InfoFrameTooLargeError'
}
/** The peer closed the stream without sending a complete frame. */
export class InfoMissingError extends InfoError {
  override name = 'InfoMissingError'
}

export interface ServeInfoOptions {
  logger?: Logger
}

/** Answers every info request with `getSignedRecord()`. Stop with `node.unhandle(INFO_PROTOCOL)`. */
export async function serveInfo (node: SwarmNode, getSignedRecord: () => Uint8Array, opts: ServeInfoOptions = {}): Promise<void> {
  const log = componentLogger('routing:info', opts.logger)
  await node.handle(INFO_PROTOCOL, async (stream, connection) => {
    try {
      const record = getSignedRecord()
      if (record.byteLength > MAX_INFO_FRAME_BYTES) {
        throw new InfoFrameTooLargeError(`own record is ${record.byteLength} bytes, limit ${MAX_INFO_FRAME_BYTES}`)
      }
      await withTimeout(DEFAULT_INFO_TIMEOUT_MS, undefined, async (signal) => {
        await stream.closeRead({ signal })
        stream.send(lp.encode.single(record))
        await stream.close({ signal })
      })
    } catch (err) {
      log.debug({ peer: connection.remotePeer.toString(), err: (err as Error).message }, 'info request failed')
      stream.abort(err as Error)
    }
  }, { maxInboundStreams: MAX_INBOUND_INFO_STREAMS, runOnLimitedConnection: true })
}

export interface FetchInfoOptions {
  signal?: AbortSignal
  /** bound on the whole exchange including the dial, ms (default DEFAULT_INFO_TIMEOUT_MS) */
  timeoutMs?: number
}

/**
 * Fetches a peer's signed record (unverified bytes). Reuses an open connection when there is one;
 * asks once more when that connection closed under the exchange (closed-under-us.ts).
 */
export async function fetchInfo (node: SwarmNode, target: PeerId | Multiaddr, opts: FetchInfoOptions = {}): Promise<Uint8Array> {
  return await withTimeout(opts.timeoutMs ?? DEFAULT_INFO_TIMEOUT_MS, opts.signal, async (signal) => await retryIfClosedUnderUs(async () => {
    const stream = await node.dialProtocol(target, INFO_PROTOCOL, { signal, runOnLimitedConnection: true })
    try {
      // listen before closing our side: the answer may already be arriving
      const [frame] = await Promise.all([readFrame(stream, signal), stream.close({ signal })])
      return frame
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }, signal))
}

/**
 * Reads one length-prefixed frame. Listens to stream events rather than iterating the stream:
 * the iterator never ends if the peer wrote and closed before iteration began (libp2p 3.3),
 * and no stream state can keep this from settling when `signal` aborts.
 */
async function readFrame (stream: Stream, signal: AbortSignal): Promise<Uint8Array> {
  const received = new Uint8ArrayList()
  const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>()
  // settles once a whole frame is in, or once the peer has closed and nothing is left unread
  // ('end' and `readableEnded` cannot be trusted: they may fire before buffered data is delivered)
  const check = (): void => {
    try {
      const frame = decodeFrame(received)
      if (frame != null) {
        resolve(frame)
      } else if (stream.remoteWriteStatus === 'closed' && stream.readBufferLength === 0) {
        reject(new InfoMissingError(`peer closed the info stream ${received.byteLength === 0 ? 'without a record' : 'mid-record'}`))
      }
    } catch (err) {
      reject(err)
    }
  }
  const onMessage = (evt: StreamMessageEvent): void => {
    received.append(evt.data)
    check()
  }
  const onClose = (evt: StreamCloseEvent): void => {
    if (evt.error != null) {
      reject(evt.error)
    }
  }
  const onAbort = (): void => { reject(signal.reason) }
  stream.addEventListener('message', onMessage)
  stream.addEventListener('remoteCloseWrite', check)
  stream.addEventListener('close', onClose)
  signal.addEventListener('abort', onAbort)
  if (signal.aborted) {
    onAbort()
  }
  check()
  try {
    return await promise
  } finally {
    stream.removeEventListener('message', onMessage)
    stream.removeEventListener('remoteCloseWrite', check)
    stream.removeEventListener('close', onClose)
    signal.removeEventListener('abort', onAbort)
  }
}

/** The frame in `received` (a copy) once complete, undefined while more bytes are needed. */
function decodeFrame (received: Uint8ArrayList): Uint8Array | undefined {
  let length = 0
  for (let i = 0; i < MAX_LENGTH_PREFIX_BYTES; i++) {
    if (i >= received.byteLength) {
      return undefined
    }
    const byte = received.get(i)
    length += (byte & 0x7f) * 2 ** (7 * i)
    if (length > MAX_INFO_FRAME_BYTES) {
      throw new InfoFrameTooLargeError(`info frame of ${length} bytes exceeds ${MAX_INFO_FRAME_BYTES}`)
    }
    if ((byte & 0x80) === 0) {
      const end = i + 1 + length
      return received.byteLength >= end ? received.slice(i + 1, end) : undefined
    }
  }
  throw new InfoFrameTooLargeError(`info frame length prefix exceeds ${MAX_LENGTH_PREFIX_BYTES} bytes`)
}
