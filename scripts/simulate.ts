// Runs the load-balancing scenarios (steady churn, correlated loss, uneven hardware, shrink and
// regrow, clients crowding one range), each under the balanced, join-only and random policies (and
// throughput-only where clients matter), then writes simulation.json and simulation.svg and prints
// one table over all of them.
//   npx tsx scripts/simulate.ts [--scenario NAME]... [--out DIR]
//                               [--peers 200 --blocks 80 --hours 24 --churn 0.1 --seed 1]
//                               [--crash-fraction 0.5 --replacement 1 --balance-quality 0.75 --check-minutes 5 --no-return-minutes 60]
// Flags other than --scenario and --out override every scenario's configuration.
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { renderSimulationSvg, runScenarios, scenarioNamed, type PolicyRun, type ScenarioResult, type SimulationConfig } from '../src/loadbalance/index.ts'

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', multiple: true },
    peers: { type: 'string' },
    blocks: { type: 'string' },
    hours: { type: 'string' },
    churn: { type: 'string' },
    'crash-fraction': { type: 'string' },
    replacement: { type: 'string' },
    seed: { type: 'string' },
    'balance-quality': { type: 'string' },
    'check-minutes': { type: 'string' },
    'no-return-minutes': { type: 'string' },
    out: { type: 'string', default: './simulation-out' }
  }
})

const overrides: Partial<Record<keyof SimulationConfig, number>> = {}
const flags: Array<[keyof typeof values, keyof SimulationConfig]> = [
  ['peers', 'peers'],
  ['blocks', 'blocks'],
  ['hours', 'hours'],
  ['churn', 'churnPerHour'],
  ['crash-fraction', 'crashFraction'],
  ['replacement', 'replacement'],
  ['seed', 'seed'],
  ['balance-quality', 'balanceQuality'],
  ['check-minutes', 'checkPeriodMinutes'],
  ['no-return-minutes', 'noReturnMinutes']
]
for (const [flag, key] of flags) {
  const raw = values[flag]
  if (raw === undefined) continue
  const value = Number(raw)
  if (!Number.isFinite(value)) fail(`--${flag}: not a number: ${String(raw)}`)
  overrides[key] = value
}

let names
try {
  names = values.scenario?.map((name) => scenarioNamed(name).name)
} catch (err) {
  fail((err as Error).message)
}

const started = performance.now()
let results: ScenarioResult[]
try {
  results = runScenarios(names, overrides as Partial<SimulationConfig>)
} catch (err) {
  fail(`bad configuration: ${(err as Error).message}`)
}
const seconds = (performance.now() - started) / 1000

const outDir = values.out
mkdirSync(outDir, { recursive: true })
writeFileSync(path.join(outDir, 'simulation.json'), JSON.stringify(results, null, 2) + '\n')
writeFileSync(path.join(outDir, 'simulation.svg'), renderSimulationSvg(results))

printTable(results)
const arrivals = results.reduce((n, r) => n + r.result.arrivals, 0)
console.log(`\n${results.length} scenarios (${arrivals} arrivals) simulated in ${seconds.toFixed(1)} s; wrote ${path.join(outDir, 'simulation.json')} and simulation.svg`)

/** One markdown table over every scenario and policy (pasted into the README as is). */
function printTable(all: ScenarioResult[]): void {
  const c = all[0].result.config
  console.log(`${c.peers} peers, ${c.blocks} blocks, ${c.hours} h, seed ${c.seed}; first ${c.settleHours} h left out as settling\n`)
  console.log('| scenario | policy | weakest/mean (avg) | worst | samples with uncovered blocks | minutes uncovered | coverage back after | moves/peer/h | capacity (tok/s) | sessions served |')
  console.log('|---|---|---|---|---|---|---|---|---|---|')
  for (const { scenario, result } of all) {
    const settled = result.runs[0].samples.filter((s) => s.hour > result.config.settleHours).length
    for (const run of result.runs) {
      const s = run.summary
      const cells = [
        scenario.name,
        run.policy,
        s.meanMinMeanRatio.toFixed(3),
        s.worstMinMeanRatio.toFixed(3),
        `${s.samplesWithGaps}/${settled}`,
        s.uncoveredMinutes.toFixed(0),
        restore(run, result.config),
        s.movesPerPeerHour.toFixed(4),
        s.meanMinThroughput.toFixed(0),
        result.clientSessions > 0 ? `${s.meanServedSessions.toFixed(0)}/${result.clientSessions}` : '–'
      ]
      console.log(`| ${cells.join(' | ')} |`)
    }
  }
}

function restore(run: PolicyRun, config: SimulationConfig): string {
  if (config.rangeLoss === undefined) return '–'
  const minutes = run.summary.restoreMinutes
  return minutes === null ? 'never' : `${minutes.toFixed(1)} min (${run.rangeLossVictims} peers lost)`
}

function fail(message: string): never {
  console.error(message)
  process.exit(2)
}
