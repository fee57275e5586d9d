// The client's side of the direct data path (protocol/direct.ts): after a session is open on its
// libp2p stream, ask the peer for a direct socket (DIRECT_PROTOCOL, over the same authenticated
// connection), dial it on the host that connection comes from, and prove the key. Best effort:
// anything that fails or takes longer than DIRECT_UPGRADE_TIMEOUT_MS leaves the session on its
// stream. Never over relayed connections (the host would be the relay's). A peer that does not
// speak the protocol (an older one, or --no-direct) or whose socket cannot be reached (a port not
// forwarded) is not asked again for a while.
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { MessageChannel } from '../protocol/channel.ts'
import { ACK_BYTES, DirectChannel, ackProves, helloFor } from '../protocol/direct.ts'
import { DIRECT_KEY_BYTES, DIRECT_PROTOCOL } from '../protocol/messages.ts'
import type { SwarmNode } from './node.ts'
import { tcpHostOf } from './reachability.ts'

/** the upgrade's whole budget (request, dial, handshake), ms */
export const DIRECT_UPGRADE_TIMEOUT_MS = 300
/** a peer whose direct path failed is not asked again for this long, ms */
const RETRY_AFTER_MS = 5 * 60_000

/** per client node: peers not to ask before the given time */
const skip = new WeakMap<SwarmNode, Map<string, number>>()

/** A direct channel for the open session `sessionId` on `peerId`, or null (the session stays on its stream). */
export async function openDirectPath (node: SwarmNode, peerId: string, sessionId: string, signal?: AbortSignal): Promise<DirectChannel | null> {
  const skipped = skip.get(node) ?? new Map<string, number>()
  skip.set(node, skipped)
  if ((skipped.get(peerId) ?? 0) > Date.now()) return null
  const id = peerIdFromString(peerId)
  const host = directHostOf(node, peerId)
  if (host === null) return null
  const budget = AbortSignal.timeout(DIRECT_UPGRADE_TIMEOUT_MS)
  const bounded = signal === undefined ? budget : AbortSignal.any([signal, budget])
  const key = randomBytes(DIRECT_KEY_BYTES)
  let socket: net.Socket | null = null
  try {
    const stream = new MessageChannel(await node.dialProtocol(id, DIRECT_PROTOCOL, { signal: bounded }), { maxFrameBytes: 1024 })
    let offer
    try {
      await stream.send({ kind: 'direct_request', sessionId, key: key.toString('base64') }, bounded)
      offer = await stream.receive(bounded)
    } finally {
      await stream.close(bounded).catch(() => { stream.abort('done') })
    }
    if (offer.kind !== 'direct_offer') throw new Error(`expected direct_offer, got ${offer.kind}`)
    const s = net.connect({ host, port: offer.port, noDelay: true })
    socket = s
    const leftover = await handshake(s, Buffer.from(offer.token, 'base64'), key, bounded)
    return new DirectChannel(s, key, 'client', {}, leftover)
  } catch {
    socket?.destroy()
    if (signal?.aborted !== true) skipped.set(peerId, Date.now() + RETRY_AFTER_MS)
    return null
  }
}

/** The remote IP of a direct (not relayed) open connection to `peerId`, or null. */
function directHostOf (node: SwarmNode, peerId: string): string | null {
  for (const conn of node.getConnections(peerIdFromString(peerId))) {
    if (conn.status !== 'open' || conn.limits !== undefined) continue
    const host = tcpHostOf(conn.remoteAddr)
    if (host !== null) return host
  }
  return null
}

/** Sends the hello and checks the peer's answer; returns any bytes read past it. */
async function handshake (socket: net.Socket, token: Buffer, key: Buffer, signal: AbortSignal): Promise<Buffer> {
  socket.write(helloFor(token, key))
  return await new Promise<Buffer>((resolve, reject) => {
    let got = Buffer.alloc(0)
    const done = (err: Error | null, rest?: Buffer): void => {
      socket.off('data', onData)
      socket.off('error', onError)
      socket.off('close', onClose)
      signal.removeEventListener('abort', onAbort)
      if (err !== null) reject(err)
      else {
        socket.pause()
        resolve(rest ?? Buffer.alloc(0))
      }
    }
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk])
      if (got.length < ACK_BYTES) return
      if (!ackProves(got.subarray(0, ACK_BYTES), key)) done(new Error('the direct socket answered without the session key'))
      else done(null, got.subarray(ACK_BYTES))
    }
    const onError = (err: Error): void => { done(err) }
    const onClose = (): void => { done(new Error('the peer closed the direct socket')) }
    const onAbort = (): void => { done(new Error('direct path handshake timed out')) }
    socket.on('data', onData)
    socket.on('error', onError)
    socket.on('close', onClose)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
