import assert from 'node:assert/strict'
import { announceSpan, findBlockPeers, findModelPeers, type Announcement, type Span } from '../../src/routing/dht.ts'
import { BootstrapAddressError } from '../../src/routing/bootstrap-keeper.ts'
import { serveInfo } from '../../src/routing/info.ts'
import { waitForRoutingTable, type SwarmNode } from '../../src/routing/node.ts'
import { signRecord, type PeerRecord } from '../../src/routing/records.ts'
import { MODEL, NodePool, addrOf, makeRecord, newIdentity, recordSigner, type TestIdentity } from './helpers.ts'

interface TestPeer {
  node: SwarmNode
  id: TestIdentity
  announcement: Announcement
  /** what the peer's served record says, on top of its announced span */
  record: Partial<PeerRecord>
}

describe('routing/dht: announce and discover (real libp2p swarm on 127.0.0.1)', function () {
  this.timeout(15_000)
  const pool = new NodePool()
  const announcements: Announcement[] = []
  let bootAddr: string

  beforeEach(async () => {
    bootAddr = addrOf(await pool.create())
  })

  afterEach(async () => {
    await Promise.all(announcements.splice(0).map(async (a) => await a.stop()))
    await pool.stopAll()
  })

  /**
   * A peer that announces `span` and serves a record built from its span and `peer.record`
   * (tests change `peer.record` to make it lie or expire), or from `serve` when given.
   */
  async function startPeer (span: Span, serve?: () => Uint8Array): Promise<TestPeer> {
    const id = await newIdentity()
    const node = await pool.create({ privateKey: id.key, bootstrap: [bootAddr] })
    const peer: TestPeer = { node, id, announcement: undefined as never, record: {} }
    await serveInfo(node, serve ?? recordSigner(id, () => ({
      ...peer.announcement?.currentSpan ?? span,
      multiaddrs: node.getMultiaddrs().map(String),
      ...peer.record
    })))
    peer.announcement = await announceSpan(node, MODEL, span, { roundTimeoutMs: 5_000 })
    announcements.push(peer.announcement)
    const round = peer.announcement.lastRound
    assert.ok(round != null && round.stored === round.keys && round.keys === span.end - span.start + 1, `announce round ${JSON.stringify(round)}`)
    return peer
  }

  /** A client in DHT client mode; discovery itself waits for its first DHT peer. */
  async function startClient (): Promise<SwarmNode> {
    return await pool.create({ bootstrap: [bootAddr], dhtMode: 'client' })
  }

  function spansOf (found: Array<{ record: PeerRecord }>): string[] {
    return found.map(({ record }) => `${record.peerId}:${record.start}-${record.end}`).sort()
  }

  function spanOf (peer: TestPeer, span: Span): string {
    return `${peer.id.peerId}:${span.start}-${span.end}`
  }

  it('a client discovers both announced spans with verified records and latencies', async () => {
    const a = await startPeer({ start: 0, end: 4 })
    const b = await startPeer({ start: 4, end: 8 })
    const client = await startClient()

    const started = performance.now()
    const all = await findModelPeers(client, MODEL, { numBlocks: 8, timeoutMs: 5_000 })
    const elapsed = performance.now() - started
    assert.deepEqual(spansOf(all), [spanOf(a, { start: 0, end: 4 }), spanOf(b, { start: 4, end: 8 })].sort())
    assert.ok(elapsed < 3_000, `discovery took ${elapsed} ms`)
    for (const { record, latencyMs } of all) {
      assert.ok(latencyMs > 0 && latencyMs < 1_000, `latency ${latencyMs}`)
      assert.equal(record.state, 'online')
      assert.ok(record.multiaddrs.length > 0)
    }
    assert.ok(all[0].latencyMs <= all[1].latencyMs, 'fastest first')

    assert.deepEqual(spansOf(await findBlockPeers(client, MODEL, 2)), [spanOf(a, { start: 0, end: 4 })])
    assert.deepEqual(spansOf(await findBlockPeers(client, MODEL, 7)), [spanOf(b, { start: 4, end: 8 })])
    assert.deepEqual(await findBlockPeers(client, MODEL, 8), [])
    assert.deepEqual(await findModelPeers(client, 'another-model'), [])
    // peers find each other too, never themselves
    assert.deepEqual(spansOf(await findModelPeers(a.node, MODEL)), [spanOf(b, { start: 4, end: 8 })])
  })

  it('a peer that stops is no longer returned', async () => {
    const a = await startPeer({ start: 0, end: 4 })
    const b = await startPeer({ start: 4, end: 8 })
    const client = await startClient()
    assert.equal((await findModelPeers(client, MODEL)).length, 2)

    await a.announcement.stop()
    await a.node.stop()
    // its provider entries remain in the DHT until they expire; the info fetch fails instead
    const started = performance.now()
    assert.deepEqual(spansOf(await findModelPeers(client, MODEL)), [spanOf(b, { start: 4, end: 8 })])
    assert.ok(performance.now() - started < 3_000)
    assert.deepEqual(await findBlockPeers(client, MODEL, 1), [])
  })

  it('a peer whose record has expired is skipped until it serves a fresh one', async () => {
    const a = await startPeer({ start: 0, end: 4 })
    const b = await startPeer({ start: 4, end: 8 })
    const client = await startClient()

    a.record = { expiresAt: Date.now() - 1 }
    assert.deepEqual(spansOf(await findModelPeers(client, MODEL)), [spanOf(b, { start: 4, end: 8 })])
    a.record = {}
    assert.equal((await findModelPeers(client, MODEL)).length, 2)
  })

  it('skips providers that serve another peer\'s record or a span they do not announce', async () => {
    const a = await startPeer({ start: 0, end: 4 })
    const b = await startPeer({ start: 4, end: 8 })
    // replays b's genuine signed record as its own
    const replayer = await startPeer({ start: 0, end: 8 }, () => signRecord(makeRecord(b.id.peerId, { start: 0, end: 8 }), b.id.key))
    // signs a record claiming its own peer id with b's key
    const forger = await startPeer({ start: 0, end: 8 }, () => {
      return signRecord(makeRecord(replayer.id.peerId, { start: 0, end: 8 }), b.id.key)
    })
    // announces every block but its signed record admits to serving only [6, 8)
    const overclaimer = await startPeer({ start: 0, end: 8 })
    overclaimer.record = { start: 6, end: 8 }
    const client = await startClient()

    const all = await findModelPeers(client, MODEL)
    assert.deepEqual(spansOf(all), [
      spanOf(a, { start: 0, end: 4 }), spanOf(b, { start: 4, end: 8 }), spanOf(overclaimer, { start: 6, end: 8 })
    ].sort())
    assert.ok(!all.some(({ record }) => record.peerId === forger.id.peerId))
    assert.deepEqual(spansOf(await findBlockPeers(client, MODEL, 2)), [spanOf(a, { start: 0, end: 4 })])
    assert.deepEqual(spansOf(await findBlockPeers(client, MODEL, 7)), [
      spanOf(b, { start: 4, end: 8 }), spanOf(overclaimer, { start: 6, end: 8 })
    ].sort())
    // a record whose span exceeds the model is dropped when the caller knows the model's size
    assert.deepEqual(spansOf(await findBlockPeers(client, MODEL, 7, { numBlocks: 7 })), [])
  })

  it('moving to another span re-announces it, and old block keys stop matching', async () => {
    const a = await startPeer({ start: 0, end: 4 })
    const client = await startClient()
    assert.equal((await findBlockPeers(client, MODEL, 1)).length, 1)

    const round = await a.announcement.update({ start: 8, end: 10 })
    assert.deepEqual([round.keys, round.stored], [3, 3])
    assert.deepEqual(await findBlockPeers(client, MODEL, 1), [])
    assert.deepEqual(spansOf(await findBlockPeers(client, MODEL, 9)), [spanOf(a, { start: 8, end: 10 })])
  })

  it('a node started before its bootstrap node joins it once it is up', async () => {
    const bootId = await newIdentity()
    const first = await pool.create({ privateKey: bootId.key })
    const addr = addrOf(first)
    await first.stop()
    const early = await pool.create({ bootstrap: [addr] })
    await pool.create({ privateKey: bootId.key, listen: [addr.replace(/\/p2p\/.*$/, '')] })
    await waitForRoutingTable(early, 1, AbortSignal.timeout(5_000))
  })

  it('joins through a bootstrap address without a peer id, and again when a new identity restarts there', async () => {
    const first = await pool.create()
    const addr = addrOf(first).replace(/\/p2p\/.*$/, '')
    const joiner = await pool.create({ bootstrap: [addr] })
    await waitForRoutingTable(joiner, 1, AbortSignal.timeout(5_000))
    assert.equal(joiner.getConnections(first.peerId).length, 1)
    // the bootstrap peer restarts on the same address with another key: it is found there again
    await first.stop()
    const reconnected = new Promise<string>((resolve) => {
      joiner.addEventListener('peer:connect', (evt) => { resolve(evt.detail.toString()) }, { once: true })
    })
    const second = await pool.create({ listen: [addr] })
    const timeout = AbortSignal.timeout(10_000)
    assert.equal(await Promise.race([reconnected, new Promise<never>((_resolve, reject) => timeout.addEventListener('abort', () => { reject(timeout.reason) }))]), second.peerId.toString())
  })

  it('rejects a bootstrap address without a port or with a broken peer id', async () => {
    await assert.rejects(pool.create({ bootstrap: ['/ip4/127.0.0.1'] }), BootstrapAddressError)
    await assert.rejects(pool.create({ bootstrap: ['/ip4/127.0.0.1/tcp/1/p2p/QmNotAPeerId'] }), BootstrapAddressError)
  })

  it('backs off after incomplete announce rounds (2×, 4×, …) and stores every key once the node has a DHT peer', async () => {
    const lone = await pool.create()
    const rounds: Array<{ keys: number, stored: number, startedAt: number, endedAt: number }> = []
    let onRound = (): void => {}
    const announcement = await announceSpan(lone, MODEL, { start: 0, end: 2 }, {
      roundTimeoutMs: 100,
      retryMs: 100,
      onRound: (r) => {
        rounds.push({ ...r, startedAt: performance.now() - r.durationMs, endedAt: performance.now() })
        onRound()
      }
    })
    announcements.push(announcement)
    /** resolves once `done()` holds after a round, bounded */
    const untilRound = async (done: () => boolean): Promise<void> => {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`rounds so far: ${JSON.stringify(rounds)}`)) }, 10_000)
        onRound = () => { if (done()) { clearTimeout(timer); resolve() } }
        onRound()
      })
    }
    await untilRound(() => rounds.length >= 4)
    assert.ok(rounds.slice(0, 4).every((r) => r.keys === 3 && r.stored === 0))
    // the waits between rounds, at least 100, 200, 400 ms (a timer may fire a millisecond early)
    for (let i = 1; i < 4; i++) {
      const wait = rounds[i].startedAt - rounds[i - 1].endedAt
      assert.ok(wait >= 100 * 2 ** (i - 1) - 5, `wait before round ${i + 1}: ${wait.toFixed(0)} ms`)
    }
    // a DHT peer appears: a later round stores every key
    await pool.create({ bootstrap: [addrOf(lone)] })
    await untilRound(() => rounds[rounds.length - 1].stored === 3)
    assert.deepEqual([announcement.lastRound?.keys, announcement.lastRound?.stored], [3, 3])
  })

  it('bounds every wait on a node without peers', async () => {
    const lone = await pool.create()
    await assert.rejects(waitForRoutingTable(lone, 1, AbortSignal.timeout(100)), { name: 'TimeoutError' })
    const started = performance.now()
    assert.deepEqual(await findModelPeers(lone, MODEL, { timeoutMs: 200 }), [])
    const announcement = await announceSpan(lone, MODEL, { start: 0, end: 2 }, { roundTimeoutMs: 200 })
    announcements.push(announcement)
    assert.deepEqual([announcement.lastRound?.keys, announcement.lastRound?.stored], [3, 0])
    assert.ok(performance.now() - started < 2_000)
    const controller = new AbortController()
    const pending = findModelPeers(lone, MODEL, { signal: controller.signal, timeoutMs: 5_000 })
    controller.abort(new Error('caller gave up'))
    await assert.rejects(pending, /caller gave up/)
  })
})
