// The situations the load balancer is judged in: each one a simulator configuration, run under
// every policy it names. `npm run simulate` runs them all; the README table and the SVG show them.
import { simulate, type SimulationConfig, type SimulationResult } from './simulator.ts'

export type ScenarioName = 'steady-churn' | 'correlated-loss' | 'uneven-hardware' | 'shrink-grow' | 'crowded-range'

export interface Scenario {
  name: ScenarioName
  /** One line for tables and charts. */
  title: string
  /** What the scenario changes from the default swarm (200 peers, 80 blocks, 24 h, 10% churn per hour, every leaver replaced). */
  config: Partial<SimulationConfig>
}

export const scenarios: readonly Scenario[] = [
  {
    name: 'steady-churn',
    title: 'steady churn: 10% of peers leave per hour, every one replaced',
    config: {}
  },
  {
    name: 'correlated-loss',
    title: 'correlated loss at 6 h: every peer serving blocks 20-39 crashes; nobody joins for 3 h',
    config: { rangeLoss: { atHour: 6, start: 20, end: 40, pauseHours: 3 } }
  },
  {
    name: 'uneven-hardware',
    title: 'uneven hardware: 10% of peers 10x faster, all arriving first',
    config: { fastPeers: { fraction: 0.1, speedup: 10, sigma: 0.15, firstMinutes: 5 } }
  },
  {
    name: 'shrink-grow',
    title: 'shrink by a third over 4-7 h, grow back over 12-15 h',
    config: { shrink: { atHour: 4, hours: 3, fraction: 1 / 3, regrowAtHour: 12 } }
  },
  {
    name: 'crowded-range',
    title: 'crowded range: 100 sessions use the whole model, 400 more only blocks 0-19',
    config: {
      policies: ['balanced', 'throughput-only', 'join-only', 'random'],
      clients: { sessions: 100, crowdSessions: 400, crowdStart: 0, crowdEnd: 20, tokensPerSecond: 10 }
    }
  }
]

export interface ScenarioResult {
  scenario: Scenario
  result: SimulationResult
}

/** Runs the named scenarios (default all), with `overrides` applied on top of each. */
export function runScenarios(names?: readonly ScenarioName[], overrides: Partial<SimulationConfig> = {}): ScenarioResult[] {
  const chosen = names === undefined ? scenarios : names.map(scenarioNamed)
  return chosen.map((scenario) => ({ scenario, result: simulate({ ...scenario.config, ...overrides }) }))
}

export function scenarioNamed(name: string): Scenario {
  const found = scenarios.find((s) => s.name === name)
  if (found === undefined) throw new RangeError(`unknown scenario ${name}; known: ${scenarios.map((s) => s.name).join(', ')}`)
  return found
}
