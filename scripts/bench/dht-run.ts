// Child process of the DHT benchmark: hosts some of the swarm's nodes, so that no single event
// loop carries the whole swarm. Each node is a peer as the daemon runs it without an engine: a
// libp2p node serving its signed record of a span on the info protocol, announcing the span
// through announceSpan.
//
// Protocol (IPC, one JSON message each way per request):
//   out once started: { ready: true }
//   in:  { req, op: 'start', bootstrap, span }   → { req, ok, result: { peerId, addrs } }
//        { req, op: 'announce', peerId }         → { req, ok, result: AnnounceRound }  (first round, or a new one)
//        { req, op: 'stop', peerId }             → { req, ok, result: null }
//        { req, op: 'lag', reset }               → { req, ok, result: { p50, p99, max } }  (ms, since this process began or the last reset)
//   out on failure: { req, ok: false, error: { name, message } }
// The process exits when the parent disconnects (it ended, crashed or was killed), stopping nothing
// gracefully: its sockets close with it.
import '../../src/polyfill.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { announceSpan, type Announcement, type AnnounceRound, type Span } from '../../src/routing/dht.ts'
import { serveInfo } from '../../src/routing/info.ts'
import { createSwarmNode, type SwarmNode } from '../../src/routing/node.ts'
import { signRecord } from '../../src/routing/records.ts'
import { ANNOUNCE_ROUND_TIMEOUT_MS, DHT_BENCH_ARCH, DHT_BENCH_MODEL, type EventLoopLag, type HostReply, type HostRequest, type StartedNode } from './dht-hosts.ts'

interface HostedNode { node: SwarmNode, span: Span, announcement?: Announcement }

const nodes = new Map<string, HostedNode>()
const loopDelay = monitorEventLoopDelay({ resolution: 20 })
loopDelay.enable()

async function start (bootstrap: string[], span: Span): Promise<StartedNode> {
  const key = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(key).toString()
  const node = await createSwarmNode({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, privateKey: key })
  let seq = 0
  await serveInfo(node, () => signRecord({
    peerId, modelId: DHT_BENCH_MODEL, arch: DHT_BENCH_ARCH, multiaddrs: node.getMultiaddrs().map(String).slice(0, 4), ...span,
    state: 'online', throughput: 10, cacheTokensLeft: 4096, dtype: 'f32', version: 'bench', expiresAt: Date.now() + 60_000, seq: ++seq
  }, key))
  nodes.set(peerId, { node, span })
  return { peerId, addrs: node.getMultiaddrs().map(String) }
}

async function announce (peerId: string): Promise<AnnounceRound> {
  const hosted = hostedNode(peerId)
  if (hosted.announcement === undefined) {
    hosted.announcement = await announceSpan(hosted.node, DHT_BENCH_MODEL, hosted.span, { roundTimeoutMs: ANNOUNCE_ROUND_TIMEOUT_MS })
    const round = hosted.announcement.lastRound
    if (round === undefined) throw new Error(`${peerId}: announceSpan resolved without a round`)
    return round
  }
  return await hosted.announcement.announceNow()
}

async function stop (peerId: string): Promise<null> {
  const hosted = hostedNode(peerId)
  nodes.delete(peerId)
  await hosted.announcement?.stop()
  await hosted.node.stop()
  return null
}

function hostedNode (peerId: string): HostedNode {
  const hosted = nodes.get(peerId)
  if (hosted === undefined) throw new Error(`no node ${peerId} in this process`)
  return hosted
}

/** this process's event-loop lag so far; `reset` starts a new measurement */
function lag (reset: boolean): EventLoopLag {
  const ms = (ns: number): number => Math.round(ns / 1e5) / 10
  const l = { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) }
  if (reset) loopDelay.reset()
  return l
}

async function handle (m: HostRequest): Promise<unknown> {
  switch (m.op) {
    case 'start': return await start(m.bootstrap, m.span)
    case 'announce': return await announce(m.peerId)
    case 'stop': return await stop(m.peerId)
    case 'lag': return lag(m.reset)
  }
}

process.on('message', (m: HostRequest) => {
  handle(m).then(
    (result) => { process.send?.({ req: m.req, ok: true, result } satisfies HostReply) },
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err))
      process.send?.({ req: m.req, ok: false, error: { name: e.name, message: e.message } } satisfies HostReply)
    })
})
process.on('disconnect', () => process.exit(0))
process.send?.({ ready: true } satisfies HostReply)
