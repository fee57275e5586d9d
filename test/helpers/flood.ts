// Abuse for the flood test: what hostile libp2p nodes (see hostile.ts) throw at one peer on its
// session protocol. Every attack is bounded (a quota, a timeout on each wait) and reports what
// the peer did with it.
import { readFile } from 'node:fs/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { MessageChannel, ChannelClosedError } from '../../src/protocol/channel.ts'
import { INFERENCE_PROTOCOL } from '../../src/protocol/messages.ts'
import type { HostileNode, SessionTarget } from './hostile.ts'

/** What became of one hostile stream. */
export type Outcome =
  | 'opened' // a valid open was accepted
  | 'refused' // the peer answered with an error message (busy, bad_request, too_long, …)
  | 'closed' // the peer closed or reset the stream without a reply
  | 'unopened' // the stream could not even be opened (stream limits)
  | 'hung' // nothing happened within the wait: a bug

export type Tally = Record<Outcome, number> & { errors: Record<string, number> }

export function emptyTally (): Tally {
  return { opened: 0, refused: 0, closed: 0, unopened: 0, hung: 0, errors: {} }
}

export async function connectTo (h: HostileNode, target: SessionTarget): Promise<void> {
  const id = peerIdFromString(target.peerId)
  await h.node.peerStore.merge(id, { multiaddrs: target.multiaddrs.map((a) => multiaddr(a)) })
  await h.node.dial(id, { signal: AbortSignal.timeout(10_000) })
}

async function openStream (h: HostileNode, target: SessionTarget): Promise<MessageChannel | null> {
  try {
    return new MessageChannel(await h.node.dialProtocol(peerIdFromString(target.peerId), INFERENCE_PROTOCOL, { signal: AbortSignal.timeout(10_000) }))
  } catch {
    return null
  }
}

/** Waits for the peer's answer on `channel` (or its closing the stream) for at most `waitMs`. */
async function answer (channel: MessageChannel, waitMs: number, tally: Tally): Promise<Outcome> {
  const signal = AbortSignal.timeout(waitMs)
  try {
    const reply = await channel.receive(signal)
    if (reply.kind === 'opened') return 'opened'
    if (reply.kind === 'error') {
      tally.errors[reply.code] = (tally.errors[reply.code] ?? 0) + 1
      return 'refused'
    }
    return 'refused'
  } catch (err) {
    if (signal.aborted && !(err instanceof ChannelClosedError)) return 'hung'
    return 'closed'
  } finally {
    channel.abort('done')
  }
}

/** Raw frames no peer should accept: garbage, a length prefix far over any limit, a broken varint. */
export const BAD_FRAMES: Array<{ name: string, bytes: () => Uint8Array }> = [
  { name: 'garbage', bytes: () => lp.encode.single(crypto.getRandomValues(new Uint8Array(200))).subarray() },
  { name: 'oversized', bytes: () => concat(varint(1 << 30), new Uint8Array(4096)) },
  { name: 'bad-varint', bytes: () => new Uint8Array(12).fill(0xff) },
  { name: 'wrong-version', bytes: () => lp.encode.single(new Uint8Array([99, 1, 2, 0, 0, 0, 123, 125])).subarray() }
]

/** Sends one bad frame on a fresh stream and waits for the peer to refuse it. */
export async function badFrame (h: HostileNode, target: SessionTarget, frame: Uint8Array, waitMs: number, tally: Tally): Promise<Outcome> {
  const channel = await openStream(h, target)
  if (channel === null) return 'unopened'
  if (!sent(() => channel.stream.send(frame))) return 'closed'
  return await answer(channel, waitMs, tally)
}

/** Sends a valid open on a fresh stream and closes it once answered (an open storm: never steps). */
export async function openAndLeave (h: HostileNode, target: SessionTarget, sessionId: string, maxLength: number, waitMs: number, tally: Tally): Promise<Outcome> {
  const channel = await openStream(h, target)
  if (channel === null) return 'unopened'
  try {
    await channel.send({ kind: 'open', sessionId, modelId: target.modelId, start: target.blocks[0], end: target.blocks[1], maxLength, wireDtype: 'f32' }, AbortSignal.timeout(waitMs))
  } catch {
    // the peer reset the stream at once (too many streams from this node)
    return 'closed'
  }
  return await answer(channel, waitMs, tally)
}

/**
 * A slow sender: the start of a frame (its length prefix says 1000 bytes, 10 follow), then
 * nothing. Resolves with how long the peer took to end the stream.
 */
export async function slowSender (h: HostileNode, target: SessionTarget, waitMs: number, tally: Tally): Promise<{ outcome: Outcome, ms: number }> {
  const channel = await openStream(h, target)
  if (channel === null) return { outcome: 'unopened', ms: 0 }
  const t0 = performance.now()
  if (!sent(() => channel.stream.send(concat(varint(1000), new Uint8Array(10))))) return { outcome: 'closed', ms: 0 }
  const outcome = await answer(channel, waitMs, tally)
  return { outcome, ms: performance.now() - t0 }
}

/** false when the peer had already closed or reset the stream */
function sent (send: () => boolean): boolean {
  try {
    send()
    return true
  } catch {
    return false
  }
}

function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return new Uint8Array(out)
}

function concat (a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

/** Resident memory of process `pid`, bytes (Linux /proc). */
export async function rssOf (pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

/** CPU time process `pid` has used so far, seconds (Linux /proc, user + system). */
export async function cpuSecondsOf (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // fields after the command name (which may hold spaces) start at the last ')'
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}
