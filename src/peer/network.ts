// The network side of the throughput a peer announces. Every token a peer serves costs one hidden
// state in and one out (f32 on the wire), so the link carries at most bandwidth / (hidden × 4 B)
// tokens/s. The bandwidth is either stated by the operator (--network-mbps) or measured on join by
// echoing about a megabyte of hidden-state-sized chunks off a bootstrap peer: libp2p's ping handler
// echoes whatever it is sent, so any strata peer can answer. The figure includes one round trip and
// the path to that one peer, so it is a lower bound on this peer's link, good enough to catch a
// peer whose network, not its CPU, is the bottleneck.
import { performance } from 'node:perf_hooks'
import type { PeerId, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { SwarmNode } from '../routing/index.ts'

const PING_PROTOCOL = '/ipfs/ping/1.0.0'
/** bytes per hidden-state value on the wire (f32) */
const WIRE_BYTES_PER_VALUE = 4
/** largest piece handed to the stream at once */
const CHUNK_BYTES = 64 * 1024

export interface EchoProbeOptions {
  /** bytes echoed per round (rounded up to whole hidden states) */
  bytes: number
  /** rounds; the median counts */
  rounds: number
  signal?: AbortSignal
}

export const defaultEchoProbe = { bytes: 1024 * 1024, rounds: 3, timeoutMs: 10_000 }

/** The echo stream ended before all bytes came back. */
export class EchoProbeError extends Error {
  override name = 'EchoProbeError'
}

/** Tokens/s a link of `bytesPerSecond` each way carries for a model of `hiddenSize`. */
export function networkTokensPerSecond (bytesPerSecond: number, hiddenSize: number): number {
  return bytesPerSecond / (hiddenSize * WIRE_BYTES_PER_VALUE)
}

export function mbpsToBytesPerSecond (mbps: number): number {
  return mbps * 1e6 / 8
}

/** Bytes/s each way between this node and `target`: median over rounds of one echo of `bytes`. */
export async function measureEchoBandwidth (node: SwarmNode, target: PeerId | Multiaddr, hiddenSize: number, opts: EchoProbeOptions): Promise<number> {
  const tokenBytes = hiddenSize * WIRE_BYTES_PER_VALUE
  const bytes = Math.ceil(opts.bytes / tokenBytes) * tokenBytes
  const rates: number[] = []
  for (let i = 0; i < opts.rounds; i++) rates.push(bytes / await echoSeconds(node, target, bytes, opts.signal))
  rates.sort((a, b) => a - b)
  return rates[rates.length >> 1]
}

/** Seconds from sending the first of `bytes` to receiving the last of them back. */
async function echoSeconds (node: SwarmNode, target: PeerId | Multiaddr, bytes: number, signal?: AbortSignal): Promise<number> {
  const stream = await node.dialProtocol(target, PING_PROTOCOL, { signal })
  const payload = crypto.getRandomValues(new Uint8Array(Math.min(bytes, CHUNK_BYTES)))
  const echoed = Promise.withResolvers<void>()
  echoed.promise.catch(() => {}) // may settle while the send loop is still waiting: awaited below
  let received = 0
  const onMessage = (evt: StreamMessageEvent): void => {
    received += evt.data.byteLength
    if (received >= bytes) echoed.resolve()
  }
  const onClose = (evt: StreamCloseEvent): void => { echoed.reject(evt.error ?? new EchoProbeError(`echo stream closed after ${received} of ${bytes} bytes`)) }
  const onAbort = (): void => { echoed.reject(signal?.reason) }
  stream.addEventListener('message', onMessage)
  stream.addEventListener('close', onClose)
  signal?.addEventListener('abort', onAbort)
  try {
    signal?.throwIfAborted()
    const started = performance.now()
    for (let sent = 0; sent < bytes; sent += payload.byteLength) {
      if (!stream.send(payload.subarray(0, Math.min(payload.byteLength, bytes - sent)))) await stream.onDrain({ signal })
    }
    await echoed.promise
    const seconds = (performance.now() - started) / 1000
    await stream.close({ signal })
    return seconds
  } catch (err) {
    stream.abort(err as Error)
    throw err
  } finally {
    stream.removeEventListener('message', onMessage)
    stream.removeEventListener('close', onClose)
    signal?.removeEventListener('abort', onAbort)
  }
}
