import assert from 'node:assert/strict'
import { renderSimulationSvg, simulate, type PolicyRun, type SimulationConfig, type SimulationResult } from '../../src/loadbalance/index.ts'

// Small swarms that run in well under a second each.
const small: Partial<SimulationConfig> = { peers: 60, blocks: 24, hours: 8, seed: 3 }

describe('loadbalance: simulator', () => {
  let result: SimulationResult
  let policies: PolicyRun[]
  before(() => {
    result = simulate(small)
    policies = [result.balanced, result.joinOnly, result.random]
  })

  it('keeps every block covered after settling when there are enough peers', () => {
    const { summary, samples } = result.balanced
    assert.equal(summary.samplesWithGaps, 0)
    assert.ok(summary.minReplicas >= 1)
    assert.equal(samples.at(-1)?.uncoveredBlocks, 0)
  })

  it('keeps the weakest block at 75% of the mean or better, and beats random span choice', () => {
    const balanced = result.balanced.summary
    const random = result.random.summary
    assert.ok(balanced.worstMinMeanRatio >= 0.75, `worst ${balanced.worstMinMeanRatio}`)
    assert.ok(balanced.meanMinMeanRatio > random.meanMinMeanRatio + 0.2, `${balanced.meanMinMeanRatio} vs ${random.meanMinMeanRatio}`)
    assert.ok(balanced.meanMinThroughput > random.meanMinThroughput)
  })

  it('is deterministic for a seed and differs across seeds', () => {
    assert.deepEqual(simulate(small), result)
    assert.notDeepEqual(simulate({ ...small, seed: 4 }).balanced.samples, result.balanced.samples)
  })

  it('replays the same churn for every policy', () => {
    const presence = (i: number): number[] => policies.map((run) => run.samples[i].peers)
    for (let i = 0; i < result.balanced.samples.length; i++) {
      assert.equal(new Set(presence(i)).size, 1, `sample ${i}: ${presence(i)}`)
    }
    // Every policy ends with the same peers, so the same total throughput.
    const totals = policies.map((run) => Math.round(run.finalBlockThroughputs.reduce((a, b) => a + b, 0)))
    assert.equal(new Set(totals).size, 1, String(totals))
  })

  it('samples on schedule, with consistent numbers', () => {
    assert.equal(result.balanced.samples.length, (8 * 60) / 10)
    for (const s of result.balanced.samples) {
      assert.ok(s.onlinePeers <= s.peers)
      assert.ok(s.minThroughput <= s.meanThroughput + 1e-9)
      // The weakest block's fastest peer is at most that block's total.
      assert.ok(s.bestChain <= s.minThroughput + 1e-9)
      assert.ok(s.minMeanRatio >= 0 && s.minMeanRatio <= 1 + 1e-12)
    }
  })

  it('under heavy churn in a shrinking swarm, moves stay bounded and keep blocks covered', () => {
    const stressed = simulate({ peers: 60, blocks: 40, hours: 8, seed: 1, churnPerHour: 0.5, replacement: 0.5 })
    assert.ok(stressed.balanced.moves > 0, 'the balancer had something to do')
    assert.ok(stressed.balanced.summary.movesPerPeerHour < 0.5, `moves/peer/h ${stressed.balanced.summary.movesPerPeerHour}`)
    assert.equal(stressed.balanced.summary.samplesWithGaps, 0)
    assert.equal(stressed.joinOnly.moves, 0)
    assert.equal(stressed.random.moves, 0)
    // Here, unlike in a swarm whose leavers are all replaced, moving adds to the join-time choice.
    assert.ok(stressed.balanced.summary.meanMinMeanRatio > stressed.joinOnly.summary.meanMinMeanRatio)
    assert.ok(stressed.joinOnly.summary.meanMinMeanRatio > stressed.random.summary.meanMinMeanRatio)
  })

  it('rejects nonsense configurations', () => {
    assert.throws(() => simulate({ peers: 0 }), RangeError)
    assert.throws(() => simulate({ hours: -1 }), RangeError)
    assert.throws(() => simulate({ replacement: 2 }), RangeError)
  })

  it('renders an SVG with a line per policy and a bar per block per policy', () => {
    const svg = renderSimulationSvg(result)
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/)
    assert.match(svg, /<\/svg>\n$/)
    assert.equal(svg.match(/<polyline /g)?.length, 3)
    assert.equal(svg.match(/<rect class="bar"/g)?.length, 3 * 24)
  })
})
