import assert from 'node:assert/strict'
import { pino } from 'pino'
import net from 'node:net'
import { announceSpan, type Announcement, type Span } from '../../src/routing/dht.ts'
import { DhtCandidates } from '../../src/routing/dht-candidates.ts'
import { blockKey } from '../../src/routing/content-keys.ts'
import { serveInfo } from '../../src/routing/info.ts'
import { waitForRoutingTable, type SwarmNode } from '../../src/routing/node.ts'
import { findSwarmPeers, gapStarts } from '../../src/routing/swarm-peers.ts'
import { MODEL, NodePool, addrOf, newIdentity, recordSigner } from './helpers.ts'

const NUM_BLOCKS = 8

interface Peer {
  node: SwarmNode
  peerId: string
  span: Span
  announcement?: Announcement
}

describe('routing/swarm-peers: candidates of a churning swarm (real libp2p nodes on 127.0.0.1)', function () {
  this.timeout(60_000)
  const pool = new NodePool()
  const announcements: Announcement[] = []
  let bootstrap: string[]

  afterEach(async () => {
    await Promise.all(announcements.splice(0).map(async (a) => await a.stop()))
    await pool.stopAll()
  })

  /** A node serving its signed record of `span`; announced as a peer daemon does unless `announce` is false. */
  async function startPeer (span: Span, announce = true, dhtMode: 'server' | 'client' = 'server'): Promise<Peer> {
    const id = await newIdentity()
    const node = await pool.create({ privateKey: id.key, bootstrap, dhtMode })
    await serveInfo(node, recordSigner(id, () => ({ ...span, multiaddrs: node.getMultiaddrs().map(String) })))
    const peer: Peer = { node, peerId: id.peerId, span }
    if (announce) {
      peer.announcement = await announceSpan(node, MODEL, span, { roundTimeoutMs: 10_000 })
      announcements.push(peer.announcement)
    }
    return peer
  }

  async function stopPeer (peer: Peer): Promise<void> {
    await peer.announcement?.stop()
    await peer.node.stop()
  }

  async function startClient (): Promise<SwarmNode> {
    return await pool.create({ bootstrap, dhtMode: 'client' })
  }

  /** The first peer, which every later node bootstraps from, announcing `span` once a second peer is up. */
  async function startFirst (span: Span): Promise<{ first: Peer, announced: () => Promise<void> }> {
    bootstrap = []
    const first = await startPeer(span, false)
    bootstrap = [addrOf(first.node)]
    return {
      first,
      announced: async () => {
        first.announcement = await announceSpan(first.node, MODEL, span, { roundTimeoutMs: 10_000 })
        announcements.push(first.announcement)
      }
    }
  }

  it('finds the peers of blocks the model-key search missed, by block key', async () => {
    const { announced } = await startFirst({ start: 0, end: 4 })
    await startPeer({ start: 0, end: 4 })
    await announced()
    // stands for a provider beyond the 20 a model-key search returns: it provides only its block
    // keys, and as a DHT client it is never dialled by others' DHT queries, so only a search
    // under its block keys finds it
    const hidden = await startPeer({ start: 4, end: 8 }, false, 'client')
    await waitForRoutingTable(hidden.node, 1, AbortSignal.timeout(10_000))
    for (let b = 4; b < 8; b++) {
      for await (const event of hidden.node.services.dht.provide(blockKey(MODEL, b))) void event
    }
    const client = await startClient()

    const modelOnly = await findSwarmPeers(client, MODEL, {})
    assert.equal(modelOnly.length, 2)
    assert.ok(!modelOnly.some((p) => p.record.peerId === hidden.peerId), 'the model key does not name it')
    const all = await findSwarmPeers(client, MODEL, { numBlocks: NUM_BLOCKS })
    assert.ok(all.some((p) => p.record.peerId === hidden.peerId), 'found under its blocks\' keys')
    assert.deepEqual(gapStarts(all.map((p) => p.record), NUM_BLOCKS), [])
    assert.equal(new Set(all.map((p) => p.record.peerId)).size, all.length, 'each peer once')
  })

  it('a departed peer that no longer answers (its port swallows the handshake) does not starve the block-key searches, and is not waited for again', async () => {
    const { announced } = await startFirst({ start: 0, end: 4 })
    const ghost = await startPeer({ start: 0, end: 4 })
    await announced()
    const hidden = await startPeer({ start: 4, end: 8 }, false, 'client')
    await waitForRoutingTable(hidden.node, 1, AbortSignal.timeout(10_000))
    for (let b = 4; b < 8; b++) {
      for await (const event of hidden.node.services.dht.provide(blockKey(MODEL, b))) void event
    }
    const client = await startClient()
    await client.dial(ghost.node.getMultiaddrs()[0])
    await waitForRoutingTable(client, 2, AbortSignal.timeout(10_000))
    // the ghost leaves without a word, as a host that vanished: its provider entries stay in the
    // DHT, and a dial to it hangs (here in the handshake) until the dialler's timeout
    const port = Number(/\/tcp\/(\d+)/.exec(addrOf(ghost.node))?.[1])
    await stopPeer(ghost)
    const silent = net.createServer(() => {})
    const sockets = new Set<net.Socket>()
    silent.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
    await new Promise<void>((resolve, reject) => { silent.once('error', reject); silent.listen(port, '127.0.0.1', resolve) })
    try {
      // the ghost is still a provider of the model key: asking it for its record takes the whole
      // info timeout (3 s), here as long as the discovery's budget
      const lines: Array<{ msg: string, peer?: string, recheck?: boolean }> = []
      const logger = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
      // probes a discovery waited for (not the checks it leaves running in the background)
      const probed = (): number => lines.filter((l) => l.peer === ghost.peerId && /provider/.test(l.msg) && l.recheck !== true).length
      const all = await findSwarmPeers(client, MODEL, { numBlocks: NUM_BLOCKS, timeoutMs: 3_000, logger })
      assert.ok(all.some((p) => p.record.peerId === hidden.peerId), 'found under its blocks\' keys within the budget')
      assert.ok(!all.some((p) => p.record.peerId === ghost.peerId), 'the ghost is not offered')
      assert.deepEqual(gapStarts(all.map((p) => p.record), NUM_BLOCKS), [])
      // it did not answer: the next discovery does not wait for it (it only checks it in the background)
      assert.ok(lines.some((l) => l.peer === ghost.peerId && /unresponsive/.test(l.msg)), 'the ghost was marked unresponsive')
      const before = probed()
      const again = await findSwarmPeers(client, MODEL, { numBlocks: NUM_BLOCKS, timeoutMs: 3_000, logger })
      assert.deepEqual(gapStarts(again.map((p) => p.record), NUM_BLOCKS), [])
      assert.equal(probed(), before, 'the unresponsive ghost is not waited for')
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => silent.close(resolve))
    }
  })

  it('a client keeps full coverage while a third of the peers leave and others join; departed peers are not offered', async () => {
    // 6 peers over 8 blocks, spans of 4 at starts 0, 2, 4, 0, 2, 4
    const starts = [0, 2, 4]
    const spanAt = (i: number): Span => ({ start: starts[i % starts.length], end: starts[i % starts.length] + 4 })
    const { first, announced } = await startFirst(spanAt(0))
    const live: Peer[] = [first]
    live.push(await startPeer(spanAt(1)))
    await announced()
    for (let i = 2; i < 6; i++) live.push(await startPeer(spanAt(i)))
    const client = await startClient()
    const candidates = new DhtCandidates(client, MODEL, NUM_BLOCKS, 'llama', 0, 0)

    const departed = new Set<string>()
    const problems: string[] = []
    let resolutions = 0
    let churning = true
    const resolveOnce = async (): Promise<void> => {
      const gone = new Set(departed)
      const list = await candidates.candidates(true)
      resolutions++
      const gaps = gapStarts(list, NUM_BLOCKS)
      if (gaps.length > 0) problems.push(`uncovered from blocks ${gaps.join(', ')}`)
      for (const c of list) if (gone.has(c.peerId)) problems.push(`departed ${c.peerId} offered`)
    }
    // resolves over and over while peers come and go, and twice after
    const resolver = (async () => {
      while (churning) await resolveOnce()
      for (let i = 0; i < 2; i++) await resolveOnce()
    })()

    // a third leave at once (never the bootstrap peer), then as many newcomers join on their spans
    const leavers = [live[1], live[3]]
    await Promise.all(leavers.map(async (p) => {
      await stopPeer(p)
      departed.add(p.peerId)
    }))
    live.splice(0, live.length, ...live.filter((p) => !leavers.includes(p)))
    for (const leaver of leavers) live.push(await startPeer(leaver.span))
    churning = false
    await resolver

    assert.deepEqual(problems, [])
    assert.ok(resolutions >= 4, `${resolutions} resolutions during the churn`)
    // the newcomers are offered, the leavers are not
    const offered = (await candidates.candidates(true)).map((c) => c.peerId).sort()
    assert.deepEqual(offered, live.map((p) => p.peerId).sort())
  })
})
