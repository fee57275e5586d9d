// Simulates a swarm under churn with the load balancer, with its join-time choice alone, and with
// random span choice, then writes simulation.json and simulation.svg and prints a summary.
//   npx tsx scripts/simulate.ts [--peers 200 --blocks 80 --hours 24 --churn 0.1 --seed 1 --out DIR]
//                               [--crash-fraction 0.5 --replacement 1 --balance-quality 0.75 --check-minutes 5]
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { renderSimulationSvg, simulate, type PolicyRun, type SimulationConfig, type SimulationResult } from '../src/loadbalance/index.ts'

const { values } = parseArgs({
  options: {
    peers: { type: 'string' },
    blocks: { type: 'string' },
    hours: { type: 'string' },
    churn: { type: 'string' },
    'crash-fraction': { type: 'string' },
    replacement: { type: 'string' },
    seed: { type: 'string' },
    'balance-quality': { type: 'string' },
    'check-minutes': { type: 'string' },
    out: { type: 'string', default: './simulation-out' }
  }
})

const overrides: Partial<SimulationConfig> = {}
const flags: Array<[keyof typeof values, keyof SimulationConfig]> = [
  ['peers', 'peers'],
  ['blocks', 'blocks'],
  ['hours', 'hours'],
  ['churn', 'churnPerHour'],
  ['crash-fraction', 'crashFraction'],
  ['replacement', 'replacement'],
  ['seed', 'seed'],
  ['balance-quality', 'balanceQuality'],
  ['check-minutes', 'checkPeriodMinutes']
]
for (const [flag, key] of flags) {
  const raw = values[flag]
  if (raw === undefined) continue
  const value = Number(raw)
  if (!Number.isFinite(value)) {
    console.error(`--${flag}: not a number: ${raw}`)
    process.exit(2)
  }
  overrides[key] = value
}

const started = performance.now()
const result = simulate(overrides)
const seconds = (performance.now() - started) / 1000

const outDir = values.out
mkdirSync(outDir, { recursive: true })
writeFileSync(path.join(outDir, 'simulation.json'), JSON.stringify(result, null, 2) + '\n')
writeFileSync(path.join(outDir, 'simulation.svg'), renderSimulationSvg(result))

printSummary(result)
printTimeline(result)
console.log(`\n${result.arrivals} arrivals simulated in ${seconds.toFixed(1)} s; wrote ${path.join(outDir, 'simulation.json')} and simulation.svg`)

function printSummary(r: SimulationResult): void {
  const c = r.config
  const settled = (run: PolicyRun): number => run.samples.filter((s) => s.hour > c.settleHours).length
  const rows: Array<[string, (run: PolicyRun) => string]> = [
    ['weakest/mean block, mean', (run) => run.summary.meanMinMeanRatio.toFixed(3)],
    ['weakest/mean block, worst', (run) => run.summary.worstMinMeanRatio.toFixed(3)],
    [`samples with weakest >= ${c.targetRatio} x mean`, (run) => `${(run.summary.atTargetFraction * 100).toFixed(0)}%`],
    ['samples with uncovered blocks', (run) => `${run.summary.samplesWithGaps}/${settled(run)}`],
    ['fewest replicas of a block', (run) => String(run.summary.minReplicas)],
    ['moves per peer per hour', (run) => run.summary.movesPerPeerHour.toFixed(4)],
    ['swarm capacity (weakest block, tok/s)', (run) => run.summary.meanMinThroughput.toFixed(0)],
    ['fastest single chain (tok/s)', (run) => run.summary.meanBestChain.toFixed(0)]
  ]
  console.log(`${c.peers} peers, ${c.blocks} blocks, ${c.hours} h, churn ${c.churnPerHour}/h (${c.crashFraction * 100}% crashes), seed ${c.seed}; ` +
    `after ${c.settleHours} h of settling:`)
  const runs = [r.balanced, r.joinOnly, r.random]
  console.log(''.padEnd(40) + runs.map((run) => run.policy.padStart(11)).join(''))
  for (const [label, cell] of rows) console.log(label.padEnd(40) + runs.map((run) => cell(run).padStart(11)).join(''))
}

/** Weakest/mean ratio and uncovered blocks at about eight moments. */
function printTimeline(r: SimulationResult): void {
  const runs = [r.balanced, r.joinOnly, r.random]
  const step = Math.max(1, Math.round(r.balanced.samples.length / 8))
  console.log('\nweakest/mean block, uncovered blocks')
  console.log('hour'.padStart(6) + runs.map((run) => run.policy.padStart(16)).join(''))
  for (let i = step - 1; i < r.balanced.samples.length; i += step) {
    const cells = runs.map((run) => `${run.samples[i].minMeanRatio.toFixed(3)} / ${run.samples[i].uncoveredBlocks}`.padStart(16))
    console.log(r.balanced.samples[i].hour.toFixed(1).padStart(6) + cells.join(''))
  }
}
