// Speculative decoding through real peer processes: the same tokens as plain local decoding, peers
// really cut their KV cache back on `truncate`, and a peer killed in the middle of speculative
// decoding (just before a truncation, or just before a verification step) is routed around with
// the same tokens: replacements replay only the accepted positions.
import assert from 'node:assert/strict'
import { pino } from 'pino'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { startSwarm, stopPeers, type PeerProcess, type TestSwarm } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'
import { e2eShape, localTokens } from '../helpers/local.ts'
import { Swarm } from '../../src/client/swarm.ts'
import { LocalPipeline } from '../../src/client/local.ts'
import { generateTokens, type TokenEvent } from '../../src/client/generation.ts'
import { WorkerHeadEngine } from '../../src/shards/worker/engine-client.ts'
import { modelIdFor } from '../../src/shards/config.ts'
import { createSwarmNode, type SwarmNode } from '../../src/routing/index.ts'
import { RemoteSpanSession, PeerFailure } from '../../src/routing/remote-span.ts'

const N = 60
const K = 4
const prompt = [1, 11, 22, 33]

/** The local speculative run's token events: which tokens end a step, and how. */
async function speculativeTrace (dir: string): Promise<TokenEvent[]> {
  const head = await WorkerHeadEngine.load(dir, { threads: 1 })
  const pipeline = await LocalPipeline.load(dir, head.config.numLayers, { threads: 1, maxLength: prompt.length + N })
  try {
    const events: TokenEvent[] = []
    for await (const e of generateTokens(head, pipeline, prompt, { maxNewTokens: N, ignoreEos: true, speculate: K })) events.push(e)
    return events
  } finally {
    await pipeline.close()
    await head.dispose()
  }
}

describe('speculative decoding through the swarm (real peer processes)', function () {
  this.timeout(180_000)
  const dir = tinyModel('e2e', e2eShape)
  let expected: number[]
  before(async function () { expected = await localTokens(dir, prompt, N) })

  describe('two peers [0,2) [2,4)', function () {
    let swarm: TestSwarm
    let node: SwarmNode | null = null
    before(async function () { swarm = await startSwarm(dir, [[0, 2], [2, 4]]) })
    after(async function () {
      await node?.stop()
      await stopPeers(swarm?.peers ?? [])
    })

    it('strata generate --speculate 4 --json: the tokens of plain local decoding, acceptance in the done event', async function () {
      const r = await runCli(['generate', '--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(N), '--ignore-eos', '--speculate', String(K), '--json', '--bootstrap', swarm.bootstrap])
      assert.equal(r.code, 0, r.stderr)
      const events = jsonLines(r.stdout)
      const done = events.pop()!
      assert.equal(done.event, 'done')
      assert.deepEqual(done.tokens, expected)
      assert.deepEqual(events.map((e) => e.index), expected.map((_, i) => i), 'one token line per token')
      for (const e of events) assert.deepEqual(Object.keys(e), ['event', 'index', 'token', 'route'])
      const s = done.speculation
      assert.equal(s.draftTokens, K)
      assert.ok(s.accepted > 0 && s.accepted < s.proposed, JSON.stringify(s))
      assert.ok(s.verifySteps < N - 1)
    })

    it('strata generate --speculate 4 --draft-model (the model itself as int8): the tokens of plain local decoding', async function () {
      const r = await runCli(['generate', '--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(N), '--ignore-eos', '--speculate', String(K), '--draft-model', dir, '--draft-format', 'int8', '--json', '--bootstrap', swarm.bootstrap])
      assert.equal(r.code, 0, r.stderr)
      const done = jsonLines(r.stdout).pop()!
      assert.deepEqual(done.tokens, expected)
      assert.equal(done.speculation.drafter, 'model')
      assert.ok(done.speculation.accepted > done.speculation.proposed / 2, JSON.stringify(done.speculation))
      // a draft model needs speculation to draft for
      const bad = await runCli(['generate', '--model', dir, '--prompt-ids', '1,2', '--draft-model', dir, '--bootstrap', swarm.bootstrap])
      assert.notEqual(bad.code, 0)
      assert.match(bad.stderr, /--draft-model drafts for speculative decoding: give --speculate K too/)
    })

    it('with --verify: the local recomputation is cut back alike, and every hop step checks out', async function () {
      const r = await runCli(['generate', '--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', '24', '--ignore-eos', '--speculate', String(K), '--verify', '--json', '--bootstrap', swarm.bootstrap])
      assert.equal(r.code, 0, r.stderr)
      const done = jsonLines(r.stdout).pop()!
      assert.deepEqual(done.tokens, expected.slice(0, 24))
      assert.deepEqual(done.rejectedPeers, [])
      assert.ok(done.speculation.accepted > 0 && done.speculation.accepted < done.speculation.proposed, JSON.stringify(done.speculation))
      // one verified step per hop per forward pass: the prefill plus one per step after it
      assert.equal(done.verifiedSteps, 2 * (1 + 23 - done.speculation.accepted))
    })

    it('a truncate really cuts the peer\'s KV cache: later steps see only the kept positions', async function () {
      node = await createSwarmNode({ bootstrap: [swarm.bootstrap], dhtMode: 'client', relay: 'off' })
      const peer = swarm.peers[0]
      const H = e2eShape.hidden
      const rows = (...ix: number[]): Float32Array => {
        const out = new Float32Array(ix.length * H)
        ix.forEach((r, i) => { for (let j = 0; j < H; j++) out[i * H + j] = Math.sin(r * 7.1 + j * 0.37) })
        return out
      }
      const open = async (sessionId: string): Promise<RemoteSpanSession> => await RemoteSpanSession.open(node!, { peerId: peer.peerId, multiaddrs: peer.multiaddrs, start: 0, end: 2 }, {
        modelId: modelIdFor(dir), sessionId, maxLength: 16, wireDtype: 'f32', hiddenSize: H, openTimeoutMs: 10_000
      })
      // rows 0-4, cut back to 3, then rows 5-6 at positions 3-4
      const cut = await open('cut')
      await cut.step(rows(0, 1, 2, 3, 4), 0, 10_000)
      await cut.truncate(3, 10_000)
      const afterCut = await cut.step(rows(5, 6), 3, 10_000)
      // what positions 3-4 give when rows 3-4 were never there
      const clean = await open('clean')
      const reference = (await clean.step(rows(0, 1, 2, 5, 6), 0, 10_000)).subarray(3 * H)
      // and when they were still in the cache (no truncation, positions 5-6)
      const kept = await open('kept')
      await kept.step(rows(0, 1, 2, 3, 4), 0, 10_000)
      const withStale = await kept.step(rows(5, 6), 5, 10_000)
      const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0)
      assert.ok(maxDiff(afterCut, reference) < 1e-4, `after the cut: ${maxDiff(afterCut, reference)} from a cache that never held rows 3-4`)
      assert.ok(maxDiff(withStale, reference) > 1e-2, 'stale positions would change the output')
      // the peer holds 5 positions now: a step at position 3 or a truncate past the end is refused
      await assert.rejects(cut.step(rows(7), 6, 10_000), (err: unknown) => err instanceof PeerFailure && /position 6.*holds 5/.test(err.message))
      await assert.rejects(kept.truncate(9, 10_000), (err: unknown) => err instanceof PeerFailure && /cannot truncate to 9/.test(err.message))
      await clean.close()
    })
  })

  it('kill -9 of serving peers mid-speculation, before a truncation and before a verification step: the same tokens', async function () {
    const trace = await speculativeTrace(dir)
    assert.deepEqual(trace.map((e) => e.token), expected, 'local speculative decoding equals plain decoding')
    // after a token that ends a step with a rejected draft, the next pipeline call is a truncate;
    // after one that ends a step with the whole draft accepted, it is the next verification step
    const beforeTruncate = trace.find((e) => e.index >= 8 && e.draft !== undefined && e.draft.accepted < e.draft.proposed && !e.last)
    const beforeStep = trace.find((e) => beforeTruncate !== undefined && e.index > beforeTruncate.index + 4 && e.draft !== undefined && e.draft.accepted === e.draft.proposed && !e.last)
    assert.ok(beforeTruncate !== undefined && beforeStep !== undefined, 'the trace has both kinds of step ends')

    let swarm: TestSwarm | null = await startSwarm(dir, [[0, 2], [2, 4], [2, 4], [2, 4]])
    const client = await Swarm.connect({ bootstrap: [swarm.bootstrap], modelDir: dir, threads: 1, logger: pino({ level: 'silent' }) })
    try {
      const killed: PeerProcess[] = []
      const tokens: number[] = []
      let done: Record<string, any> | null = null
      // the generator is paused at each token while this loop body runs: the kill lands exactly there
      for await (const e of client.generate({ ids: prompt }, { maxNewTokens: N, ignoreEos: true, speculate: K })) {
        if (e.event === 'done') { done = e; continue }
        tokens.push(e.token)
        if (e.index === beforeTruncate.index || e.index === beforeStep.index) {
          const hop = e.route.find((h) => h.start === 2)!
          const victim = swarm.peers.find((p) => p.peerId === hop.peer)!
          victim.kill('SIGKILL')
          await victim.exited
          killed.push(victim)
        }
      }
      assert.deepEqual(tokens, expected)
      assert.ok(done !== null)
      assert.deepEqual(done.tokens, expected)
      assert.equal(done.reroutes, 2, JSON.stringify(done.rerouteLog))
      assert.deepEqual(done.rerouteLog.map((r: { failedPeer: string }) => r.failedPeer), killed.map((p) => p.peerId))
      assert.ok(done.speculation.accepted > 0)
    } finally {
      await client.close()
      await stopPeers(swarm.peers)
      swarm = null
    }
  })
})
