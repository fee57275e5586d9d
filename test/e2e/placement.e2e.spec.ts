// Issue: load balancing. Peers started without --blocks place themselves where the swarm is
// weakest, and move when a peer leaves a gap. Real peer processes on 127.0.0.1.
import assert from 'node:assert/strict'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { startPeer, stopPeers, useSharedThroughputCache, type PeerProcess } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'
import { localTokens } from '../helpers/local.ts'

const BLOCKS = 6
const shape = { layers: BLOCKS, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 320, seed: 41 }
/** rebalancing checks every 0.5–1.5 s */
const REBALANCE = ['--rebalance-interval-ms', '1000']

/** The blocks a peer serves now: its ready line's, or where it last moved. */
function currentSpan (p: PeerProcess): [number, number] {
  const moved = p.events.filter((e) => e.event === 'rebalanced').pop()
  return moved === undefined ? p.blocks : moved.to
}

function uncovered (spans: Array<[number, number]>): number[] {
  return Array.from({ length: BLOCKS }, (_, b) => b).filter((b) => !spans.some(([s, e]) => s <= b && b < e))
}


async function waitForCoverage (peers: PeerProcess[], signal: AbortSignal): Promise<void> {
  while (uncovered(peers.map(currentSpan)).length > 0) {
    signal.throwIfAborted()
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe('peers place themselves and rebalance (real processes)', function () {
  this.timeout(60_000)
  const dir = tinyModel('placement', shape)
  const prompt = [1, 7, 42, 99]
  const N = 8
  const peers: PeerProcess[] = []
  let expected: number[]
  useSharedThroughputCache()

  before(async function () { expected = await localTokens(dir, prompt, N) })
  afterEach(async function () { await stopPeers(peers.splice(0)) })

  /** Starts `count` movable peers of `numBlocks` blocks one after another, all joining through the first. */
  async function startMovable (count: number, numBlocks: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const bootstrap = i === 0 ? [] : ['--bootstrap', peers[0].multiaddrs[0]]
      peers.push(await startPeer(dir, ['--num-blocks', String(numBlocks), ...REBALANCE, ...bootstrap], `peer ${i}`, 20_000))
    }
  }

  async function swarmTokens (via: PeerProcess): Promise<number[]> {
    const r = await runCli(['generate', '--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(N), '--ignore-eos', '--json', '--bootstrap', via.multiaddrs[0]], 20_000)
    assert.equal(r.code, 0, r.stderr)
    const done = jsonLines(r.stdout).pop()
    assert.equal(done?.event, 'done')
    return done.tokens
  }

  it('peers joining one after another without --blocks cover the whole model, and a client can generate', async function () {
    await startMovable(3, 2)
    assert.deepEqual(peers.map((p) => p.blocks), [[0, 2], [2, 4], [4, 6]], 'each newcomer takes the first uncovered blocks')
    assert.deepEqual(await swarmTokens(peers[0]), expected)
  })

  it('when a peer leaves a gap, a redundant peer moves into it', async function () {
    await startMovable(3, 3)
    assert.deepEqual(uncovered(peers.map((p) => p.blocks)), [])
    const lone = peers.find((p) => peers.filter((q) => q.blocks[0] === p.blocks[0]).length === 1)
    assert.ok(lone !== undefined, `one span is served twice: ${JSON.stringify(peers.map((p) => p.blocks))}`)
    const redundant = peers.filter((p) => p !== lone)
    lone.kill('SIGKILL')
    await lone.exited
    const moved = await Promise.any(redundant.map(async (p) => await p.waitFor((e) => e.event === 'rebalanced', 20_000)))
    assert.deepEqual(moved.to, lone.blocks)
    assert.deepEqual(moved.from, redundant[0].blocks)
    assert.match(moved.reason, /weakest block/)
    await waitForCoverage(redundant, AbortSignal.timeout(10_000))
    assert.deepEqual(await swarmTokens(redundant[0]), expected)
  })
})
