import assert from 'node:assert/strict'
import {
  policyRun, renderSimulationSvg, runScenarios, scenarios, simulate,
  type MoveRecord, type PolicyRun, type ScenarioResult, type SimulationConfig, type SimulationResult
} from '../../src/loadbalance/index.ts'

// Small swarms that run in well under a second each.
const small: Partial<SimulationConfig> = { peers: 60, blocks: 24, hours: 8, seed: 3 }

/** Moves of a peer onto blocks it had left less than `minutes` before. */
function returns(log: readonly MoveRecord[], minutes: number): MoveRecord[] {
  return log.filter((move, i) => log.slice(0, i).some((earlier) =>
    earlier.peerId === move.peerId && move.minute - earlier.minute < minutes &&
    move.to.start < earlier.from.end && earlier.from.start < move.to.end))
}

describe('loadbalance: simulator', () => {
  let result: SimulationResult
  let policies: PolicyRun[]
  before(() => {
    result = simulate(small)
    policies = result.runs
  })

  it('runs the balanced, join-only and random policies by default', () => {
    assert.deepEqual(policies.map((r) => r.policy), ['balanced', 'join-only', 'random'])
    assert.throws(() => policyRun(result, 'throughput-only'), RangeError)
  })

  it('keeps every block covered after settling when there are enough peers', () => {
    const { summary, samples } = policyRun(result, 'balanced')
    assert.equal(summary.samplesWithGaps, 0)
    assert.equal(summary.uncoveredMinutes, 0)
    assert.ok(summary.minReplicas >= 1)
    assert.equal(samples.at(-1)?.uncoveredBlocks, 0)
  })

  it('keeps the weakest block at 75% of the mean or better, and beats random span choice', () => {
    const balanced = policyRun(result, 'balanced').summary
    const random = policyRun(result, 'random').summary
    assert.ok(balanced.worstMinMeanRatio >= 0.75, `worst ${balanced.worstMinMeanRatio}`)
    assert.ok(balanced.meanMinMeanRatio > random.meanMinMeanRatio + 0.2, `${balanced.meanMinMeanRatio} vs ${random.meanMinMeanRatio}`)
    assert.ok(balanced.meanMinThroughput > random.meanMinThroughput)
  })

  it('is deterministic for a seed and differs across seeds', () => {
    assert.deepEqual(simulate(small), result)
    assert.notDeepEqual(simulate({ ...small, seed: 4 }).runs[0].samples, result.runs[0].samples)
  })

  it('replays the same churn for every policy', () => {
    const presence = (i: number): number[] => policies.map((run) => run.samples[i].peers)
    for (let i = 0; i < result.runs[0].samples.length; i++) {
      assert.equal(new Set(presence(i)).size, 1, `sample ${i}: ${presence(i)}`)
    }
    // Every policy ends with the same peers, so the same total throughput.
    const totals = policies.map((run) => Math.round(run.finalBlockThroughputs.reduce((a, b) => a + b, 0)))
    assert.equal(new Set(totals).size, 1, String(totals))
  })

  it('samples on schedule, with consistent numbers', () => {
    assert.equal(result.runs[0].samples.length, (8 * 60) / 10)
    for (const s of result.runs[0].samples) {
      assert.ok(s.onlinePeers <= s.peers)
      assert.ok(s.minThroughput <= s.meanThroughput + 1e-9)
      // The weakest block's fastest peer is at most that block's total.
      assert.ok(s.bestChain <= s.minThroughput + 1e-9)
      assert.ok(s.minMeanRatio >= 0 && s.minMeanRatio <= 1 + 1e-12)
      assert.equal(s.servedSessions, 0, 'no clients, nobody served')
    }
  })

  it('under heavy churn in a shrinking swarm, moves stay bounded and keep blocks covered', () => {
    const stressed = simulate({ peers: 60, blocks: 40, hours: 8, seed: 1, churnPerHour: 0.5, replacement: 0.5 })
    const [balanced, joinOnly, random] = stressed.runs
    assert.ok(balanced.moves > 0, 'the balancer had something to do')
    assert.ok(balanced.summary.movesPerPeerHour < 0.5, `moves/peer/h ${balanced.summary.movesPerPeerHour}`)
    assert.equal(balanced.summary.samplesWithGaps, 0)
    assert.equal(joinOnly.moves, 0)
    assert.equal(random.moves, 0)
    // Here, unlike in a swarm whose leavers are all replaced, moving adds to the join-time choice.
    assert.ok(balanced.summary.meanMinMeanRatio > joinOnly.summary.meanMinMeanRatio)
    assert.ok(joinOnly.summary.meanMinMeanRatio > random.summary.meanMinMeanRatio)
  })

  it('rejects nonsense configurations', () => {
    assert.throws(() => simulate({ peers: 0 }), RangeError)
    assert.throws(() => simulate({ hours: -1 }), RangeError)
    assert.throws(() => simulate({ replacement: 2 }), RangeError)
    assert.throws(() => simulate({ policies: [] }), RangeError)
    assert.throws(() => simulate({ rangeLoss: { atHour: 1, start: 70, end: 90, pauseHours: 1 } }), /rangeLoss \[70, 90\)/)
    assert.throws(() => simulate({ shrink: { atHour: 4, hours: 3, fraction: 0.3, regrowAtHour: 5 } }), /regrowAtHour/)
    assert.throws(() => simulate({ clients: { sessions: 1, crowdSessions: 1, crowdStart: 0, crowdEnd: 4, tokensPerSecond: 0 } }), /tokensPerSecond/)
  })
})

describe('loadbalance: stability', () => {
  // A shrinking swarm under heavy churn: the balancer moves often, so a peer has chances to go back.
  const busy: Partial<SimulationConfig> = { peers: 60, blocks: 24, hours: 8, seed: 1, churnPerHour: 0.5, replacement: 0.5, policies: ['balanced'] }

  it('a peer never moves back onto blocks it left within noReturnMinutes', () => {
    const run = simulate({ ...busy, noReturnMinutes: 60 }).runs[0]
    assert.ok(run.moves >= 5, `moves ${run.moves}`)
    assert.deepEqual(returns(run.moveLog, 60), [])
  })

  it('without the rule, the same swarm does move peers straight back (so the rule is what prevents it)', () => {
    const run = simulate({ ...busy, noReturnMinutes: 0 }).runs[0]
    assert.ok(returns(run.moveLog, 60).length > 0, 'some peer went back within the hour')
  })

  it('when nothing changes, moves stop: total moves bounded, none after the swarm formed', () => {
    for (const seed of [1, 2, 3]) {
      const run = simulate({ peers: 60, blocks: 24, hours: 12, seed, churnPerHour: 0, policies: ['balanced'] }).runs[0]
      assert.ok(run.moves <= 60, `seed ${seed}: ${run.moves} moves for 60 peers`)
      const late = run.moveLog.filter((m) => m.minute > 2 * 60)
      assert.deepEqual(late, [], `seed ${seed}: moves after the ramp`)
      assert.ok(run.summary.worstMinMeanRatio >= 0.75, `seed ${seed}: worst ${run.summary.worstMinMeanRatio}`)
    }
  })
})

describe('loadbalance: scenarios', () => {
  // Every scenario at a tenth of its size: 60 peers, 24 blocks (ranges scaled with the blocks).
  const scale: Partial<SimulationConfig> = { peers: 60, blocks: 24 }
  let all: ScenarioResult[]
  const named = (name: string): SimulationResult => all.find((r) => r.scenario.name === name)!.result
  before(() => {
    all = scenarios.map((scenario) => {
      const c = scenario.config
      const scaled: Partial<SimulationConfig> = { ...c, ...scale, hours: 16 }
      if (c.rangeLoss !== undefined) scaled.rangeLoss = { ...c.rangeLoss, start: 6, end: 12 }
      if (c.clients !== undefined) scaled.clients = { ...c.clients, crowdStart: 0, crowdEnd: 6 }
      return { scenario, result: simulate(scaled) }
    })
  })

  it('every scenario compares balanced, join-only and random', () => {
    assert.deepEqual(scenarios.map((s) => s.name), ['steady-churn', 'correlated-loss', 'uneven-hardware', 'shrink-grow', 'crowded-range'])
    for (const { result } of all) {
      for (const policy of ['balanced', 'join-only', 'random'] as const) assert.ok(policyRun(result, policy).samples.length > 0)
    }
  })

  it('correlated loss: moving peers restore coverage within minutes; join-only waits for newcomers', () => {
    const r = named('correlated-loss')
    const balanced = policyRun(r, 'balanced')
    const joinOnly = policyRun(r, 'join-only')
    assert.ok(balanced.rangeLossVictims > 0 && joinOnly.rangeLossVictims > 0)
    assert.ok(balanced.summary.restoreMinutes !== null && balanced.summary.restoreMinutes < 30, `balanced: ${balanced.summary.restoreMinutes} min`)
    // nobody joins for pauseHours after the loss, so join-only cannot close the gap before then
    assert.ok(joinOnly.summary.restoreMinutes === null || joinOnly.summary.restoreMinutes >= 3 * 60, `join-only: ${joinOnly.summary.restoreMinutes} min`)
    assert.ok(balanced.summary.uncoveredMinutes < joinOnly.summary.uncoveredMinutes)
    assert.ok(balanced.moves > 0)
  })

  it('uneven hardware and shrink-and-regrow: the balancer keeps every block covered and balanced', () => {
    for (const name of ['uneven-hardware', 'shrink-grow']) {
      const r = named(name)
      const balanced = policyRun(r, 'balanced').summary
      assert.equal(balanced.samplesWithGaps, 0, name)
      assert.ok(balanced.meanMinMeanRatio >= 0.75, `${name}: ${balanced.meanMinMeanRatio}`)
      assert.ok(balanced.meanMinMeanRatio > policyRun(r, 'random').summary.meanMinMeanRatio + 0.2, name)
    }
  })

  it('shrink-and-regrow: a third of the peers leave, then as many come back', () => {
    const samples = policyRun(named('shrink-grow'), 'balanced').samples
    const at = (hour: number): number => samples.find((s) => Math.abs(s.hour - hour) < 1e-9)!.peers
    assert.ok(at(7) < 0.75 * at(4), `${at(4)} peers before, ${at(7)} after shrinking`)
    assert.ok(at(15.5) > 0.9 * at(4), `${at(15.5)} peers after regrowing`)
  })

  it('crowded range: weighing sessions serves more clients than throughput-only placement', () => {
    const r = named('crowded-range')
    const balanced = policyRun(r, 'balanced').summary
    const throughputOnly = policyRun(r, 'throughput-only').summary
    assert.equal(r.clientSessions, 500)
    assert.ok(balanced.meanServedSessions > throughputOnly.meanServedSessions + 5, `${balanced.meanServedSessions} vs ${throughputOnly.meanServedSessions}`)
    assert.ok(balanced.meanServedSessions <= r.clientSessions + 1e-9)
  })

  it('renders every scenario in one SVG: a line per policy, the shocks marked', () => {
    const svg = renderSimulationSvg(all)
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/)
    assert.match(svg, /<\/svg>\n$/)
    const lines = all.reduce((n, r) => n + r.result.runs.length, 0)
    assert.equal(svg.match(/<polyline /g)?.length, lines)
    assert.equal(svg.match(/<line class="shock"/g)?.length, 4, 'range loss, arrivals resume, shrink, regrowth')
    for (const s of scenarios) assert.ok(svg.includes(s.name), s.name)
  })

  it('runScenarios runs the named ones with overrides, and rejects unknown names', () => {
    const [one] = runScenarios(['steady-churn'], { peers: 20, blocks: 8, hours: 3 })
    assert.equal(one.result.config.peers, 20)
    assert.throws(() => runScenarios(['nope' as 'steady-churn']), /unknown scenario nope/)
  })
})
