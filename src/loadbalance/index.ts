// Load balancing (Petals §3.2): which blocks a peer hosts and when it moves, plus a swarm simulator
// to measure it. Pure logic: no network, no inference runtime.
export type { BlockRange, PeerState, SpanInfo } from './types.ts'
export { blockThroughputs, chooseBestSpan, shouldMove, spanLengthForMemory } from './block-selection.ts'
export type { MoveDecision, ShouldMoveOptions } from './block-selection.ts'
export { defaultSimulationConfig, simulate } from './simulator.ts'
export type { PolicyName, PolicyRun, PolicySummary, Sample, SimulationConfig, SimulationResult } from './simulator.ts'
export { renderSimulationSvg } from './simulation-svg.ts'
