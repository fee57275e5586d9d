// An in-memory swarm under churn, to measure the load balancer against two baselines: the same
// join-time choice without ever moving, and random span choice.
//
// Time is in minutes. One churn schedule (who arrives when, with what hardware, and how and when it
// leaves) is drawn from the seed first; every policy then replays that same schedule, so the
// policies differ only in where peers put their spans. Peers see each other's announcements
// instantly (no DHT delay), which flatters neither policy.
import { blockThroughputs, chooseBestSpan, shouldMove, spanLengthForMemory } from './block-selection.ts'
import { EventQueue } from './event-queue.ts'
import { exponential, logNormal, mulberry32, uniformInt, type Random } from './random.ts'
import type { BlockRange, SpanInfo } from './types.ts'

export interface SimulationConfig {
  /** Peers that form the swarm; leavers are replaced by newcomers (see `replacement`). Default 200. */
  peers: number
  /** Transformer blocks in the model. Default 80. */
  blocks: number
  /** Simulated hours. Default 24. */
  hours: number
  /** Fraction of peers leaving per hour (graceful leaves and crashes together). Default 0.1. */
  churnPerHour: number
  /** Share of departures that are crashes (gone at once, no drain). Default 0.5. */
  crashFraction: number
  /** Share of departures replaced by a newcomer; below 1 the swarm shrinks, which is when moving matters. Default 1. */
  replacement: number
  /** Seed of everything random: the churn schedule, hardware, check timing, random spans. Default 1. */
  seed: number
  /** `shouldMove`'s hysteresis (Petals' balance_quality). Default 0.75. */
  balanceQuality: number
  /** Weakest/mean block throughput the swarm should keep; only reported against. Default 0.75. */
  targetRatio: number
  /** Mean minutes between an online peer's rebalance checks; each wait is uniform in [0, 2×mean] as in Petals (which uses 2). Default 5. */
  checkPeriodMinutes: number
  /** Minutes a peer spends loading weights (state `joining`) before it serves. Default 3. */
  loadMinutes: number
  /** Minutes a leaving or moving peer spends draining its sessions. Default 2. */
  drainMinutes: number
  /** Minutes over which the initial peers arrive. Default 60. */
  rampMinutes: number
  /** Mean minutes between a departure and its replacement's arrival. Default 5. */
  replaceMinutes: number
  /** Minutes between metric samples. Default 10. */
  sampleMinutes: number
  /** Hours left out of the summary while the swarm forms (unless that leaves no samples). Default 2. */
  settleHours: number
}

export const defaultSimulationConfig: Readonly<SimulationConfig> = {
  peers: 200,
  blocks: 80,
  hours: 24,
  churnPerHour: 0.1,
  crashFraction: 0.5,
  replacement: 1,
  seed: 1,
  balanceQuality: 0.75,
  targetRatio: 0.75,
  checkPeriodMinutes: 5,
  loadMinutes: 3,
  drainMinutes: 2,
  rampMinutes: 60,
  replaceMinutes: 5,
  sampleMinutes: 10,
  settleHours: 2
}

/**
 * `balanced`: chooseBestSpan on joining, shouldMove while online. `join-only`: the same choice on
 * joining, never moves (what the moves add). `random`: a uniformly random start, never moves.
 */
export type PolicyName = 'balanced' | 'join-only' | 'random'

/** The swarm as clients see it at one moment; only online peers count. */
export interface Sample {
  hour: number
  /** Peers present in any state. */
  peers: number
  onlinePeers: number
  /** Blocks no online peer serves: a client cannot run the model while this is above 0. */
  uncoveredBlocks: number
  /** Fewest online peers serving any one block. */
  minReplicas: number
  /** Throughput of the weakest block: the most tokens/s the whole swarm can serve. */
  minThroughput: number
  meanThroughput: number
  /** minThroughput / meanThroughput: 1 is perfect balance. */
  minMeanRatio: number
  /** One client's fastest chain: per block the fastest online peer, then the slowest of those. */
  bestChain: number
  /** Moves started since the previous sample, per present peer per hour. */
  movesPerPeerHour: number
}

/** Averages over the samples after `settleHours`. */
export interface PolicySummary {
  meanMinMeanRatio: number
  worstMinMeanRatio: number
  finalMinMeanRatio: number
  /** Share of settled samples at or above `targetRatio`. */
  atTargetFraction: number
  /** Settled samples with at least one uncovered block. */
  samplesWithGaps: number
  /** Fewest replicas of any block over the settled samples. */
  minReplicas: number
  movesPerPeerHour: number
  meanMinThroughput: number
  meanBestChain: number
}

export interface PolicyRun {
  policy: PolicyName
  samples: Sample[]
  /** Per-block throughput of the online peers at the end. */
  finalBlockThroughputs: number[]
  /** Total moves started. */
  moves: number
  summary: PolicySummary
}

export interface SimulationResult {
  config: SimulationConfig
  /** Peers that arrived over the run (identical for every policy). */
  arrivals: number
  balanced: PolicyRun
  joinOnly: PolicyRun
  random: PolicyRun
}

/** Runs the same churn schedule under each policy. */
export function simulate(overrides: Partial<SimulationConfig> = {}): SimulationResult {
  const config = { ...defaultSimulationConfig, ...overrides }
  validate(config)
  const plans = planPeers(config)
  return {
    config,
    arrivals: plans.length,
    balanced: runPolicy(config, plans, 'balanced'),
    joinOnly: runPolicy(config, plans, 'join-only'),
    random: runPolicy(config, plans, 'random')
  }
}

/**
 * Hardware of simulated peers: memory and speed are log-normal, as across volunteer GPUs. A block
 * is 400 MiB (a 7B-class model in f16); a peer keeps 20% of its memory for caches, so the median
 * peer hosts 12 blocks. A peer's throughput is min(network, compute / span length): hosting more
 * blocks makes each token slower through the span.
 */
const hardware = {
  bytesPerBlock: 400 * 2 ** 20,
  medianMemoryBytes: 6 * 2 ** 30,
  memorySigma: 0.7,
  reserveFraction: 0.2,
  /** Block·tokens/s. */
  medianCompute: 2000,
  computeSigma: 0.8,
  /** Tokens/s. */
  medianNetwork: 300,
  networkSigma: 0.5
}

/** One peer's life, fixed before any policy runs. Times in minutes. */
interface PeerPlan {
  id: string
  arriveAt: number
  leaveAt: number
  crash: boolean
  spanLength: number
  throughput: number
}

interface SimPeer extends SpanInfo {
  readonly plan: PeerPlan
  /** Bumped when the peer starts a move or leaves, so events scheduled for its old life are ignored. */
  epoch: number
}

type SimEvent =
  | { kind: 'arrive'; plan: PeerPlan }
  | { kind: 'leave'; plan: PeerPlan }
  | { kind: 'online' | 'check' | 'remove'; id: string; epoch: number }
  | { kind: 'sample' }

interface Policy {
  readonly name: PolicyName
  readonly rebalances: boolean
  place: (others: SpanInfo[], plan: PeerPlan) => BlockRange
}

function validate(config: SimulationConfig): void {
  for (const key of ['peers', 'blocks'] as const) {
    if (!Number.isInteger(config[key]) || config[key] < 1) throw new RangeError(`${key} must be a positive integer, got ${config[key]}`)
  }
  for (const key of ['hours', 'checkPeriodMinutes', 'sampleMinutes'] as const) {
    if (!(config[key] > 0)) throw new RangeError(`${key} must be positive, got ${config[key]}`)
  }
  if (config.sampleMinutes > config.hours * 60) throw new RangeError(`sampleMinutes (${config.sampleMinutes}) must fit in the run`)
  if (!(config.churnPerHour >= 0)) throw new RangeError(`churnPerHour must be >= 0, got ${config.churnPerHour}`)
  for (const key of ['crashFraction', 'replacement', 'balanceQuality'] as const) {
    if (!(config[key] >= 0 && config[key] <= 1)) throw new RangeError(`${key} must be in [0, 1], got ${config[key]}`)
  }
}

/**
 * The churn schedule: initial arrivals over the ramp, then a replacement for (a `replacement` share
 * of) the departures. Ids follow arrival order, so the swarm's peer list is already in the id order
 * the balancer sorts by, which keeps that sort cheap.
 */
function planPeers(config: SimulationConfig): PeerPlan[] {
  const random = mulberry32(config.seed)
  const horizon = config.hours * 60
  const meanLifetime = config.churnPerHour > 0 ? 60 / config.churnPerHour : Infinity
  const plans: Array<Omit<PeerPlan, 'id'>> = []
  const arrivals = Array.from({ length: config.peers }, () => random() * config.rampMinutes)
  for (let i = 0; i < arrivals.length; i++) {
    const arriveAt = arrivals[i]
    const leaveAt = arriveAt + (Number.isFinite(meanLifetime) ? exponential(random, meanLifetime) : Infinity)
    plans.push({ arriveAt, leaveAt, crash: random() < config.crashFraction, ...drawHardware(random, config.blocks) })
    if (leaveAt < horizon && random() < config.replacement) arrivals.push(leaveAt + exponential(random, config.replaceMinutes))
  }
  return plans
    .filter((p) => p.arriveAt < horizon)
    .sort((a, b) => a.arriveAt - b.arriveAt)
    .map((p, i) => ({ id: `peer-${String(i).padStart(5, '0')}`, ...p }))
}

function drawHardware(random: Random, blocks: number): Pick<PeerPlan, 'spanLength' | 'throughput'> {
  const memory = logNormal(random, hardware.medianMemoryBytes, hardware.memorySigma)
  // A peer too small for one block would not join; the smallest that does hosts one.
  const spanLength = Math.max(1, spanLengthForMemory(memory, hardware.bytesPerBlock, blocks, hardware.reserveFraction))
  const compute = logNormal(random, hardware.medianCompute, hardware.computeSigma)
  const network = logNormal(random, hardware.medianNetwork, hardware.networkSigma)
  return { spanLength, throughput: Math.min(network, compute / spanLength) }
}

function makePolicy(name: PolicyName, config: SimulationConfig): Policy {
  if (name !== 'random') {
    return { name, rebalances: name === 'balanced', place: (others, plan) => chooseBestSpan(others, config.blocks, plan.spanLength) }
  }
  // Its own stream, so random placement cannot disturb anything else drawn from the seed.
  const random = mulberry32(config.seed ^ 0x5eed)
  return {
    name,
    rebalances: false,
    place: (_others, plan) => {
      const length = Math.min(plan.spanLength, config.blocks)
      const start = uniformInt(random, 0, config.blocks - length + 1)
      return { start, end: start + length }
    }
  }
}

/** Replays the schedule under one policy, sampling the swarm every `sampleMinutes`. */
function runPolicy(config: SimulationConfig, plans: readonly PeerPlan[], name: PolicyName): PolicyRun {
  const policy = makePolicy(name, config)
  const checkRandom = mulberry32(config.seed ^ 0xc4ec)
  const horizon = config.hours * 60
  const peers = new Map<string, SimPeer>()
  const queue = new EventQueue<SimEvent>()
  const samples: Sample[] = []
  let moves = 0
  let movesSinceSample = 0

  for (const plan of plans) {
    queue.push(plan.arriveAt, { kind: 'arrive', plan })
    if (plan.leaveAt < horizon) queue.push(plan.leaveAt, { kind: 'leave', plan })
  }
  for (let t = config.sampleMinutes; t <= horizon; t += config.sampleMinutes) queue.push(t, { kind: 'sample' })

  const scheduleCheck = (now: number, peer: SimPeer): void => {
    if (policy.rebalances) queue.push(now + checkRandom() * 2 * config.checkPeriodMinutes, { kind: 'check', id: peer.peerId, epoch: peer.epoch })
  }
  /** The peer behind a lifecycle event, unless the event belongs to a life it has since left. */
  const current = (event: { id: string; epoch: number }): SimPeer | undefined => {
    const peer = peers.get(event.id)
    return peer?.epoch === event.epoch ? peer : undefined
  }

  for (let next = queue.pop(); next !== undefined && next.time <= horizon; next = queue.pop()) {
    const { time: now, event } = next
    switch (event.kind) {
      case 'arrive': {
        const { plan } = event
        const { start, end } = policy.place([...peers.values()], plan)
        peers.set(plan.id, { peerId: plan.id, start, end, throughput: plan.throughput, state: 'joining', plan, epoch: 0 })
        queue.push(now + config.loadMinutes, { kind: 'online', id: plan.id, epoch: 0 })
        break
      }
      case 'leave': {
        const peer = peers.get(event.plan.id)
        if (peer === undefined) break
        peer.epoch++
        if (event.plan.crash) {
          peers.delete(peer.peerId)
        } else {
          peer.state = 'draining'
          queue.push(now + config.drainMinutes, { kind: 'remove', id: peer.peerId, epoch: peer.epoch })
        }
        break
      }
      case 'online': {
        const peer = current(event)
        if (peer === undefined) break
        peer.state = 'online'
        scheduleCheck(now, peer)
        break
      }
      case 'check': {
        const peer = current(event)
        if (peer === undefined) break
        const decision = shouldMove([...peers.values()], config.blocks, peer, { balanceQuality: config.balanceQuality })
        if (!decision.move) {
          scheduleCheck(now, peer)
          break
        }
        // The destination is announced at once, as joining, while the old span drains its sessions
        // and the new blocks load: peers checking meanwhile see the gap being filled and do not all
        // rush to it.
        moves++
        movesSinceSample++
        peer.epoch++
        peer.start = decision.to.start
        peer.end = decision.to.end
        peer.state = 'joining'
        queue.push(now + config.drainMinutes + config.loadMinutes, { kind: 'online', id: peer.peerId, epoch: peer.epoch })
        break
      }
      case 'remove': {
        if (current(event) !== undefined) peers.delete(event.id)
        break
      }
      case 'sample': {
        samples.push(measure(now, [...peers.values()], config, movesSinceSample))
        movesSinceSample = 0
        break
      }
    }
  }

  const online = [...peers.values()].filter((p) => p.state === 'online')
  return {
    policy: name,
    samples,
    finalBlockThroughputs: [...blockThroughputs(online, config.blocks)],
    moves,
    summary: summarize(samples, config)
  }
}

function measure(now: number, present: SimPeer[], config: SimulationConfig, moves: number): Sample {
  const online = present.filter((p) => p.state === 'online')
  const throughputs = blockThroughputs(online, config.blocks)
  const replicas = new Array<number>(config.blocks).fill(0)
  const fastest = new Array<number>(config.blocks).fill(0)
  for (const peer of online) {
    for (let block = peer.start; block < peer.end; block++) {
      replicas[block]++
      fastest[block] = Math.max(fastest[block], peer.throughput)
    }
  }
  const minThroughput = Math.min(...throughputs)
  const meanThroughput = throughputs.reduce((a, b) => a + b, 0) / config.blocks
  return {
    hour: now / 60,
    peers: present.length,
    onlinePeers: online.length,
    uncoveredBlocks: replicas.filter((r) => r === 0).length,
    minReplicas: Math.min(...replicas),
    minThroughput,
    meanThroughput,
    minMeanRatio: meanThroughput > 0 ? minThroughput / meanThroughput : 0,
    bestChain: Math.min(...fastest),
    movesPerPeerHour: present.length > 0 ? moves / present.length / (config.sampleMinutes / 60) : 0
  }
}

function summarize(samples: Sample[], config: SimulationConfig): PolicySummary {
  const settled = samples.filter((s) => s.hour > config.settleHours)
  const use = settled.length > 0 ? settled : samples
  const mean = (pick: (s: Sample) => number): number => use.reduce((sum, s) => sum + pick(s), 0) / Math.max(1, use.length)
  return {
    meanMinMeanRatio: mean((s) => s.minMeanRatio),
    worstMinMeanRatio: Math.min(...use.map((s) => s.minMeanRatio)),
    finalMinMeanRatio: use.at(-1)?.minMeanRatio ?? 0,
    atTargetFraction: use.filter((s) => s.minMeanRatio >= config.targetRatio).length / Math.max(1, use.length),
    samplesWithGaps: use.filter((s) => s.uncoveredBlocks > 0).length,
    minReplicas: Math.min(...use.map((s) => s.minReplicas)),
    movesPerPeerHour: mean((s) => s.movesPerPeerHour),
    meanMinThroughput: mean((s) => s.minThroughput),
    meanBestChain: mean((s) => s.bestChain)
  }
}
