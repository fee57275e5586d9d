// Issue: one remote node could take every session slot of a peer. A hostile libp2p node (own
// source address on loopback) opens as many sessions as it can on a real peer process and holds
// them; an honest `strata generate` still gets through with the local tokens.
import assert from 'node:assert/strict'
import { e2eShape, localTokens } from '../helpers/local.ts'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { startPeer, startSwarm, stopPeers, type TestSwarm } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'
import { HostileNode, targetOf, metric, metricsOf } from '../helpers/hostile.ts'
import { loadModelConfig } from '../../src/shards/config.ts'
import { Swarm } from '../../src/client/swarm.ts'
import type { GenerationEvent } from '../../src/client/session.ts'
import type { RerouteEvent } from '../../src/routing/chain-session.ts'

const prompt = [1, 20, 30, 40, 50]
const NEW_TOKENS = 8




async function honestGenerate (dir: string, bootstrap: string): Promise<{ tokens: number[], reroutes: number, stderr: string }> {
  const r = await runCli(['generate', '--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(NEW_TOKENS), '--ignore-eos', '--json', '--bootstrap', bootstrap])
  assert.equal(r.code, 0, r.stderr)
  const done = jsonLines(r.stdout).at(-1)
  assert.equal(done?.event, 'done')
  return { tokens: done.tokens, reroutes: done.reroutes, stderr: r.stderr }
}

describe('fair share of a peer between remotes (real peer process, hostile libp2p nodes)', function () {
  this.timeout(120_000)
  const dir = tinyModel('e2e', e2eShape)
  const maxLength = loadModelConfig(dir).maxPositions
  let expected: number[]
  let swarm: TestSwarm | null = null
  const hostiles: HostileNode[] = []
  before(async function () { expected = await localTokens(dir, prompt, NEW_TOKENS) })
  afterEach(async function () {
    await Promise.all(hostiles.splice(0).map(async (h) => await h.stop()))
    if (swarm !== null) await stopPeers(swarm.peers)
    swarm = null
  })

  it('one hostile node gets its share, loses unused sessions, and an honest client generates meanwhile', async function () {
    // default slots and shares (16 slots, 4 per peer id, 8 per address); unused sessions closed after 10 s
    swarm = await startSwarm(dir, [[0, 4]], [['--metrics-port', '0', '--first-step-timeout-ms', '10000']])
    const peer = swarm.peers[0]
    // the honest client (the SDK, in process) is connected first, so that it generates well
    // within the hostile node's hold
    const client = await Swarm.connect({ bootstrap: [swarm.bootstrap], modelDir: dir, threads: 1 })
    try {
      const hostile = await HostileNode.start('127.0.0.2')
      hostiles.push(hostile)
      assert.equal(await hostile.openMany(targetOf(peer), 16, maxLength), 4, 'at most its fair share')
      assert.equal(hostile.refusals.length, 12)
      for (const r of hostile.refusals) assert.match(r, /^busy: this remote peer already holds 4 of its 4 sessions here$/)

      const reroutes: RerouteEvent[] = []
      let done: GenerationEvent | undefined
      for await (const e of client.generate({ ids: prompt }, { maxNewTokens: NEW_TOKENS, ignoreEos: true, onReroute: (r) => { reroutes.push(r) } })) done = e
      assert.ok(done?.event === 'done')
      assert.deepEqual(done.tokens, expected)
      assert.equal(done.reroutes, 0)
      assert.deepEqual(reroutes, [])

      // use it or lose it: the held sessions are closed and their reservations released
      const ends = await hostile.heldSessionsEnded(60_000)
      for (const end of ends) {
        assert.ok(end !== 'closed' && end.kind === 'error', 'told why')
        assert.equal(end.code, 'timeout')
        assert.match(end.message, /no step for 10000 ms/)
      }
    } finally {
      await client.close()
    }
    await peer.waitFor(() => peer.events.filter((x) => x.event === 'session_closed').length >= 5, 10_000)
    // the honest session ran (and ended) while the hostile ones were still held
    const honestClosed = peer.events.findIndex((e) => e.event === 'session_closed' && e.steps > 0)
    const firstEvicted = peer.events.findIndex((e) => e.event === 'session_evicted')
    assert.ok(honestClosed >= 0 && honestClosed < firstEvicted, `honest session done before the hostile ones were closed: ${JSON.stringify(peer.events.map((e) => [e.event, e.steps, e.reason]))}`)
    assert.equal(peer.events.filter((e) => e.event === 'session_evicted' && e.reason === 'no_first_step' && e.ip === '127.0.0.2').length, 4)

    const text = await metricsOf(peer)
    assert.equal(metric(text, 'strata_peer_refusals_total{reason="peer_sessions",phase="open"}'), 12)
    assert.equal(metric(text, 'strata_peer_evictions_total{reason="no_first_step"}'), 4)
    assert.equal(metric(text, 'strata_peer_open_sessions'), 0)
    assert.equal(metric(text, 'strata_peer_kv_cache_bytes'), 0)
  })

  it('many hostile identities on one address: the per-address cap holds; a full peer evicts an idle session for a newcomer', async function () {
    // sessions stay held (2 min to the first step; the test never waits for that) and are idle at once (no active window)
    swarm = await startSwarm(dir, [[0, 4]], [['--metrics-port', '0', '--first-step-timeout-ms', '120000', '--active-window-ms', '0']])
    const peer = swarm.peers[0]
    const target = targetOf(peer)
    const crowd = async (address: string, identities: number): Promise<{ opened: number, refusals: string[] }> => {
      let opened = 0
      const refusals: string[] = []
      for (let i = 0; i < identities; i++) {
        const h = await HostileNode.start(address)
        hostiles.push(h)
        opened += await h.openMany(target, 1, maxLength)
        refusals.push(...h.refusals)
      }
      return { opened, refusals }
    }
    const a = await crowd('127.0.0.3', 12)
    assert.equal(a.opened, 8, 'the per-address cap (half of 16 slots)')
    assert.equal(a.refusals.length, 4)
    for (const r of a.refusals) assert.match(r, /^busy: address 127\.0\.0\.3 already holds 8 of its 8 sessions here$/)
    const b = await crowd('127.0.0.4', 8)
    assert.equal(b.opened, 8)
    // every slot is taken
    await peer.waitFor(() => peer.events.filter((e) => e.event === 'session_opened').length === 16, 10_000)

    // visible: slots in use per peer, in the record (health --json keeps its contract fields)
    const health = await runCli(['health', '--json', '--bootstrap', swarm.bootstrap])
    assert.equal(health.code, 0, health.stderr)
    const report = JSON.parse(health.stdout)
    assert.equal(report.peers.length, 1)
    assert.deepEqual([report.peers[0].sessions, report.peers[0].maxSessions], [16, 16])
    for (const field of ['peerId', 'start', 'end', 'state', 'throughput', 'multiaddrs', 'version', 'lastSeen']) assert.ok(field in report.peers[0], field)

    const honest = await honestGenerate(dir, swarm.bootstrap)
    assert.deepEqual(honest.tokens, expected)
    assert.equal(honest.reroutes, 0)
    assert.doesNotMatch(honest.stderr, /busy/)

    const evicted = await peer.waitFor((e) => e.event === 'session_evicted', 10_000)
    assert.equal(evicted.reason, 'pressure')
    assert.match(evicted.ip, /^127\.0\.0\.[34]$/)
    assert.equal(peer.events.filter((e) => e.event === 'session_evicted').length, 1, 'one idle session made room, no more')
    const text = await metricsOf(peer)
    assert.equal(metric(text, 'strata_peer_refusals_total{reason="ip_sessions",phase="open"}'), 4)
    assert.equal(metric(text, 'strata_peer_evictions_total{reason="pressure"}'), 1)
  })

  it('a session that cannot grow its reservation is answered busy on a step; the client re-routes with the same tokens', async function () {
    this.timeout(180_000)
    // 1 KiB of KV per position on this model: a 1 MiB share holds 1024 positions
    const longPrompt = Array.from({ length: 1000 }, (_, i) => 1 + ((i * 7) % 300))
    const n = 30
    const expectedLong = await localTokens(dir, longPrompt, n)
    swarm = await startSwarm(dir, [[0, 4]], [['--metrics-port', '0', '--cache-mb-per-peer', '1']])
    const client = await Swarm.connect({ bootstrap: [swarm.bootstrap], modelDir: dir, threads: 1 })
    try {
      const reroutes: RerouteEvent[] = []
      const events = client.generate({ ids: longPrompt }, { maxNewTokens: n, ignoreEos: true, onReroute: (r) => { reroutes.push(r) } })[Symbol.asyncIterator]()
      // the prompt went through the only peer (its reservation grew to the prompt, without margin)
      const first = await events.next()
      assert.equal(first.value?.event, 'token')
      // a second peer joins while the generation is paused
      swarm.peers.push(await startPeer(dir, ['--blocks', '0:4', '--bootstrap', swarm.bootstrap], 'peer[0,4) #2'))
      let done: GenerationEvent | undefined
      for (let r = await events.next(); r.done !== true; r = await events.next()) done = r.value
      assert.ok(done?.event === 'done')
      assert.deepEqual(done.tokens, expectedLong)
      assert.equal(reroutes.length, 1)
      assert.equal(reroutes[0].reason, 'busy')
      assert.equal(reroutes[0].failedPeer, swarm.peers[0].peerId)
      assert.equal(reroutes[0].replacement[0].peerId, swarm.peers[1].peerId)
    } finally {
      await client.close()
    }
    const text = await metricsOf(swarm.peers[0])
    assert.equal(metric(text, 'strata_peer_refusals_total{reason="peer_cache",phase="step"}'), 1)
  })
})
