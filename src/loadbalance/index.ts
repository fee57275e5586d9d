// Load balancing (Petals §3.2): which blocks a peer hosts and when it moves, plus a swarm simulator
// to measure it. Pure logic: no network, no inference runtime.
export type { BlockRange, PeerState, SpanInfo } from './types.ts'
export { blockThroughputs, chooseBestSpan, demandWeights, shouldMove, spanLengthForMemory } from './block-selection.ts'
export { LeftSpans } from './left-spans.ts'
export type { MoveDecision, ShouldMoveOptions } from './block-selection.ts'
export { defaultSimulationConfig, policyRun, simulate } from './simulator.ts'
export type { Clients, FastPeers, MoveRecord, PolicyName, PolicyRun, PolicySummary, RangeLoss, Sample, Shrink, SimulationConfig, SimulationResult } from './simulator.ts'
export { runScenarios, scenarioNamed, scenarios } from './scenarios.ts'
export type { Scenario, ScenarioName, ScenarioResult } from './scenarios.ts'
export { renderSimulationSvg } from './simulation-svg.ts'
