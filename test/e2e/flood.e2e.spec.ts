// Issue #11 (abuse resistance, with figures): many connections, malformed and oversized frames,
// a session-open storm and slow senders hit one real peer process while an honest `strata
// generate` runs through it. A node that sends a bad frame is shut out (its address refused at
// TCP accept), so most of the 1000 frames never reach the peer's protocol handler. The honest tokens stay exact, the peer stays up with bounded memory,
// every hostile stream is answered or closed in bounded time, and the tok/s drop is printed
// (a figure for README, never an assertion).
import assert from 'node:assert/strict'
import { e2eShape, localTokens } from '../helpers/local.ts'
import { GenerateProcess, startSwarm, stopPeers, type TestSwarm, type PeerEventLine } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'
import { HostileNode, targetOf, metric, metricsOf } from '../helpers/hostile.ts'
import { BAD_FRAMES, badFrame, connectTo, cpuSecondsOf, emptyTally, openAndLeave, rssOf, slowSender, type Outcome, type Tally } from '../helpers/flood.ts'
import { loadModelConfig } from '../../src/shards/config.ts'

const prompt = [1, 20, 30, 40, 50]
const NEW_TOKENS = 250
/** tokens generated before the flood starts: the baseline rate */
const BASELINE_TOKENS = 80
const CONNECTIONS = 50
const BAD_FRAME_QUOTA = 1000
const OPEN_STORM_QUOTA = 600
const SLOW_SENDERS = 20
const FIRST_STEP_TIMEOUT_MS = 2000
/** how much the peer's resident memory may grow under the flood (its span and engine are loaded before) */
const RSS_GROWTH_BOUND = 256 * 1024 * 1024




function mib (bytes: number): string { return (bytes / 1024 / 1024).toFixed(0) }

describe('flood: one peer under abuse while an honest client generates (real peer process)', function () {
  this.timeout(120_000)
  const dir = tinyModel('e2e', e2eShape)
  const maxLength = loadModelConfig(dir).maxPositions
  let swarm: TestSwarm | null = null
  let gen: GenerateProcess | null = null
  const hostiles: HostileNode[] = []
  afterEach(async function () {
    gen?.kill()
    gen = null
    await Promise.all(hostiles.splice(0).map(async (h) => await h.stop()))
    if (swarm !== null) await stopPeers(swarm.peers)
    swarm = null
  })

  it('keeps the honest tokens exact, answers or closes every hostile stream, stays up with bounded memory', async function () {
    const expected = await localTokens(dir, prompt, NEW_TOKENS)
    swarm = await startSwarm(dir, [[0, e2eShape.layers]], [['--metrics-port', '0', '--first-step-timeout-ms', String(FIRST_STEP_TIMEOUT_MS)]])
    const peer = swarm.peers[0]
    const pid = peer.proc.pid
    assert.ok(pid !== undefined)
    const target = targetOf(peer)

    const rssBefore = await rssOf(pid)
    // many connections: one per hostile node, each from its own loopback address
    for (let i = 0; i < CONNECTIONS; i++) hostiles.push(await HostileNode.start(`127.0.1.${i + 1}`))
    await Promise.all(hostiles.map(async (h) => { await connectTo(h, target) }))

    // the honest client generates; the flood starts once it has BASELINE_TOKENS tokens, so both
    // rates come from one session of one process (arrival times of its --json token lines)
    gen = new GenerateProcess(['--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(NEW_TOKENS), '--ignore-eos', '--bootstrap', swarm.bootstrap])
    const arrived = new Map<PeerEventLine, number>()
    const stamped = (e: PeerEventLine): PeerEventLine => { if (!arrived.has(e)) arrived.set(e, performance.now()); return e }
    const floodStart = await gen.waitFor((e) => stamped(e).event === 'token' && e.index === BASELINE_TOKENS, 60_000)

    let rssPeak = rssBefore
    let stop = false
    const sampler = (async () => {
      while (!stop) {
        rssPeak = Math.max(rssPeak, await rssOf(pid))
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    })()

    const frames = emptyTally()
    const storm = emptyTally()
    const slow = emptyTally()
    const slowMs: number[] = []
    const hungKinds: string[] = []
    let framesSent = 0
    let opensSent = 0
    const record = (t: Tally, o: Outcome): void => { t[o]++ }
    // every worker stops at its quota or when the honest generation is over, whichever first
    const workers: Array<Promise<void>> = []
    // malformed and oversized frames: 20 nodes, two streams at a time each
    for (const h of hostiles.slice(0, 20)) {
      for (let lane = 0; lane < 2; lane++) {
        workers.push((async () => {
          while (!stop && framesSent < BAD_FRAME_QUOTA) {
            const frame = BAD_FRAMES[framesSent++ % BAD_FRAMES.length]
            const o = await badFrame(h, target, frame.bytes(), 10_000, frames)
            record(frames, o)
            if (o === 'hung') hungKinds.push(frame.name)
          }
        })())
      }
    }
    // an open storm: 10 nodes, eight concurrent opens each, never stepping
    for (const [n, h] of hostiles.slice(20, 30).entries()) {
      for (let lane = 0; lane < 8; lane++) {
        workers.push((async () => {
          while (!stop && opensSent < OPEN_STORM_QUOTA) {
            record(storm, await openAndLeave(h, target, `storm-${n}-${opensSent++}`, maxLength, 10_000, storm))
          }
        })())
      }
    }
    // slow senders: one stalled partial frame from each of the other 20 nodes
    for (const h of hostiles.slice(CONNECTIONS - SLOW_SENDERS)) {
      workers.push((async () => {
        const r = await slowSender(h, target, FIRST_STEP_TIMEOUT_MS + 10_000, slow)
        record(slow, r.outcome)
        slowMs.push(r.ms)
      })())
    }

    const cpu0 = { peer: await cpuSecondsOf(pid), hostile: process.cpuUsage(), at: performance.now() }
    const done = await gen.waitFor((e) => stamped(e).event === 'done', 90_000)
    const wall = (performance.now() - cpu0.at) / 1000
    const peerCpu = (await cpuSecondsOf(pid) - cpu0.peer) / wall
    const hostileCpu = (() => { const u = process.cpuUsage(cpu0.hostile); return (u.user + u.system) / 1e6 / wall })()
    const during = { frames: framesSent, opens: opensSent }
    stop = true
    await Promise.all(workers)
    await sampler

    const tokenAt = (i: number): number => arrived.get(gen!.events.find((e) => e.event === 'token' && e.index === i)!)!
    const alone = (BASELINE_TOKENS - 1) / (tokenAt(BASELINE_TOKENS) - tokenAt(1)) * 1000
    const flooded = (NEW_TOKENS - 1 - BASELINE_TOKENS) / (tokenAt(NEW_TOKENS - 1) - arrived.get(floodStart)!) * 1000
    // the figure for README (a test must not assert speed)
    console.log(`      flood: ${alone.toFixed(1)} tok/s alone, ${flooded.toFixed(1)} tok/s under flood (${((1 - flooded / alone) * 100).toFixed(0)}% drop) over ${(wall).toFixed(1)} s; ` +
      `peer RSS ${mib(rssBefore)} MiB before, ${mib(rssPeak)} MiB peak; CPU cores used meanwhile: peer ${peerCpu.toFixed(2)}, hostile nodes ${hostileCpu.toFixed(2)}; ` +
      `sent meanwhile: ${during.frames} bad frames, ${during.opens} opens, ${slowMs.length} slow senders; ` +
      `frames ${JSON.stringify(frames)}, storm ${JSON.stringify(storm)}, slow senders closed after ${Math.min(...slowMs).toFixed(0)}–${Math.max(...slowMs).toFixed(0)} ms`)

    assert.equal(await gen.exited, 0, gen.errors)
    assert.deepEqual(done.tokens, expected, 'the honest generation is exact under flood')
    assert.equal(done.reroutes, 0)
    assert.ok(peer.running, 'the peer survived')
    assert.ok(rssPeak - rssBefore < RSS_GROWTH_BOUND, `peer RSS grew ${mib(rssPeak - rssBefore)} MiB`)

    // every hostile stream was answered or closed; none hung
    for (const [name, t] of Object.entries({ frames, storm, slow })) assert.equal(t.hung, 0, `${name}: ${JSON.stringify(t)} ${hungKinds.join(',')}`)
    assert.equal(frames.opened, 0, 'no bad frame opened a session')
    assert.ok(frames.refused > 0 && (frames.errors.bad_request ?? 0) > 0, JSON.stringify(frames))
    // slow senders: closed once the open's deadline passed (plus the close's own grace; the
    // hostile side starts its clock after the peer's, so no lower bound here)
    assert.equal(slow.unopened + slow.opened + slow.closed, 0, JSON.stringify(slow))
    assert.equal(slow.errors.timeout, SLOW_SENDERS, 'told why')
    for (const ms of slowMs) assert.ok(ms < FIRST_STEP_TIMEOUT_MS + 5_000, `slow sender ended after ${ms} ms`)
    // the storm: each storming peer id held its session share at most, the rest refused as busy
    assert.ok(storm.opened > 0 && (storm.errors.busy ?? 0) > 0, JSON.stringify(storm))

    // once the hostile nodes leave, nothing of them is left on the peer
    await Promise.all(hostiles.splice(0).map(async (h) => await h.stop()))
    await peer.waitFor(() => peer.events.filter((e) => e.event === 'session_opened').length === peer.events.filter((e) => e.event === 'session_closed').length, 20_000)
    const text = await metricsOf(peer)
    assert.equal(metric(text, 'strata_peer_open_sessions'), 0)
    assert.equal(metric(text, 'strata_peer_kv_cache_bytes'), 0)
    // every node that sent a bad frame was shut out (later frames were refused at TCP accept)
    assert.equal(new Set(peer.events.filter((e) => e.event === 'remote_banned').map((e) => e.ip)).size, 20)
    assert.ok(metric(text, 'strata_peer_limited_total{limit="banned"}') >= 20)
    assert.ok(peer.running)
  })

  it('holds each remote peer id to its open streams and its rate of opens', async function () {
    swarm = await startSwarm(dir, [[0, e2eShape.layers]], [['--metrics-port', '0', '--max-streams-per-peer', '3', '--max-opens-per-peer', '5', '--max-sessions-per-peer', '16', '--first-step-timeout-ms', '3000']])
    const peer = swarm.peers[0]
    const target = targetOf(peer)
    const h = await HostileNode.start('127.0.2.1')
    hostiles.push(h)
    await connectTo(h, target)

    // 10 open storms in a row, each answered before the next: a burst of 10 (twice the rate), then refused
    const storm = emptyTally()
    for (let i = 0; i < 20; i++) storm[await openAndLeave(h, target, `rate-${i}`, maxLength, 10_000, storm)]++
    assert.ok(storm.opened >= 10 && storm.opened <= 12, JSON.stringify(storm))
    assert.equal(storm.opened + (storm.errors.busy ?? 0), 20, JSON.stringify(storm))

    // 8 slow senders from one id at once: 3 are held until their open's deadline, 5 are reset at once
    const slow = emptyTally()
    const ms = await Promise.all(Array.from({ length: 8 }, async () => {
      const r = await slowSender(h, target, 15_000, slow)
      slow[r.outcome]++
      return r.ms
    }))
    assert.equal(slow.hung, 0)
    assert.equal(slow.errors.timeout, 3, JSON.stringify(slow))
    assert.equal(slow.closed, 5, JSON.stringify(slow))
    assert.equal(ms.filter((t) => t < 1_500).length, 5, `reset at once: ${ms.map((t) => t.toFixed(0)).join(', ')}`)

    const text = await metricsOf(peer)
    assert.equal(metric(text, 'strata_peer_limited_total{limit="streams"}'), 5)
    assert.ok(metric(text, 'strata_peer_limited_total{limit="opens"}') >= 8)
    assert.ok(peer.running)
  })
})
