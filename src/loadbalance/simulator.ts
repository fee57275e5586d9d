// An in-memory swarm under churn, to measure the load balancer against two baselines: the same
// join-time choice without ever moving, and random span choice.
//
// Time is in minutes. One churn schedule (who arrives when, with what hardware, and how and when it
// leaves) is drawn from the seed first; every policy then replays that same schedule, so the
// policies differ only in where peers put their spans. The one exception is a correlated loss
// (`rangeLoss`): it takes every peer serving a range, and who that is depends on the policy. Peers
// see each other's announcements instantly (no DHT delay), which flatters neither policy.
import { blockThroughputs, chooseBestSpan, shouldMove, spanLengthForMemory } from './block-selection.ts'
import { EventQueue } from './event-queue.ts'
import { LeftSpans } from './left-spans.ts'
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
  /** A balanced peer does not move to blocks it left less than this many minutes ago (LeftSpans). Default 60. */
  noReturnMinutes: number
  /** Policies to run, in this order. Default balanced, join-only, random. */
  policies: PolicyName[]
  /** Correlated loss: every peer serving a block of a range leaves at once. Default none. */
  rangeLoss?: RangeLoss
  /** A few much faster peers among the others, arriving out of turn. Default none (all from one log-normal). */
  fastPeers?: FastPeers
  /** The swarm shrinks, then grows back. Default none. */
  shrink?: Shrink
  /** Clients holding inference sessions: what the swarm is for. Default none. */
  clients?: Clients
}

export interface RangeLoss {
  /** When every peer serving a block of `[start, end)` crashes. */
  atHour: number
  start: number
  end: number
  /** For this many hours afterwards nobody joins: newcomers due then come this much later. */
  pauseHours: number
}

export interface FastPeers {
  /** Share of peers (initial ones and newcomers alike) that are fast. */
  fraction: number
  /** Their throughput over the others' median. */
  speedup: number
  /** The others' throughput spread (sigma of its logarithm), narrow so that the two classes stand apart. */
  sigma: number
  /** The initial fast peers all arrive in the first `firstMinutes` of the ramp, before nearly every other peer. */
  firstMinutes: number
}

export interface Shrink {
  /** From this hour, over `hours`, a `fraction` of the peers leave without replacement. */
  atHour: number
  hours: number
  fraction: number
  /** From this hour, over `hours`, as many newcomers arrive. */
  regrowAtHour: number
}

export interface Clients {
  /** Sessions running the whole model. */
  sessions: number
  /** Further sessions that need only blocks `[crowdStart, crowdEnd)`: clients crowding one range. */
  crowdSessions: number
  crowdStart: number
  crowdEnd: number
  /** Tokens/s one session wants through each block it uses. */
  tokensPerSecond: number
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
  settleHours: 2,
  noReturnMinutes: 60,
  policies: ['balanced', 'join-only', 'random']
}

/**
 * `balanced`: chooseBestSpan on joining, shouldMove while online, both seeing the peers' open
 * sessions (demand). `throughput-only`: the same, blind to sessions. `join-only`: the balanced choice
 * on joining, never moves (what the moves add). `random`: a uniformly random start, never moves.
 */
export type PolicyName = 'balanced' | 'throughput-only' | 'join-only' | 'random'

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
  /** Client sessions served at full speed (fractions count), with `clients`; 0 without. */
  servedSessions: number
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
  /** Minutes with an uncovered block over the settled part of the run, measured at every event. */
  uncoveredMinutes: number
  /** With `rangeLoss`: minutes from the loss until every block is covered again; null if never. */
  restoreMinutes: number | null
  /** Mean of the samples' servedSessions; with `clients`, out of clientSessions. */
  meanServedSessions: number
}

/** One move of one peer. */
export interface MoveRecord {
  minute: number
  peerId: string
  from: BlockRange
  to: BlockRange
}

export interface PolicyRun {
  policy: PolicyName
  samples: Sample[]
  /** Per-block throughput of the online peers at the end. */
  finalBlockThroughputs: number[]
  /** Total moves started. */
  moves: number
  /** Every move, in order. */
  moveLog: MoveRecord[]
  /** With `rangeLoss`: how many peers it took. */
  rangeLossVictims: number
  summary: PolicySummary
}

export interface SimulationResult {
  config: SimulationConfig
  /** Peers that arrived over the run (identical for every policy). */
  arrivals: number
  /** Client sessions wanting service (0 without `clients`). */
  clientSessions: number
  /** One per `config.policies`, in that order. */
  runs: PolicyRun[]
}

/** Runs the same churn schedule under each policy. */
export function simulate(overrides: Partial<SimulationConfig> = {}): SimulationResult {
  const config = { ...defaultSimulationConfig, ...overrides }
  validate(config)
  const plans = planPeers(config)
  return {
    config,
    arrivals: plans.length,
    clientSessions: config.clients === undefined ? 0 : config.clients.sessions + config.clients.crowdSessions,
    runs: config.policies.map((name) => runPolicy(config, plans, name))
  }
}

/** The run of one policy. */
export function policyRun(result: SimulationResult, policy: PolicyName): PolicyRun {
  const run = result.runs.find((r) => r.policy === policy)
  if (run === undefined) throw new RangeError(`policy ${policy} was not simulated`)
  return run
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
  readonly left: LeftSpans
}

type SimEvent =
  | { kind: 'arrive'; plan: PeerPlan }
  | { kind: 'leave'; plan: PeerPlan }
  | { kind: 'online' | 'check' | 'remove'; id: string; epoch: number }
  | { kind: 'sample' }
  | { kind: 'range-loss' }

interface Policy {
  readonly name: PolicyName
  readonly rebalances: boolean
  /** Whether the balancer sees the peers' open sessions. */
  readonly demandAware: boolean
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
  if (!(config.noReturnMinutes >= 0)) throw new RangeError(`noReturnMinutes must be >= 0, got ${config.noReturnMinutes}`)
  for (const key of ['crashFraction', 'replacement', 'balanceQuality'] as const) {
    if (!(config[key] >= 0 && config[key] <= 1)) throw new RangeError(`${key} must be in [0, 1], got ${config[key]}`)
  }
  if (config.policies.length === 0) throw new RangeError('policies must name at least one policy')
  const range = (what: string, start: number, end: number): void => {
    if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= config.blocks)) {
      throw new RangeError(`${what} [${start}, ${end}) must be a non-empty range of the ${config.blocks} blocks`)
    }
  }
  const { rangeLoss, fastPeers, shrink, clients } = config
  if (rangeLoss !== undefined) {
    range('rangeLoss', rangeLoss.start, rangeLoss.end)
    if (!(rangeLoss.atHour >= 0 && rangeLoss.pauseHours >= 0)) throw new RangeError('rangeLoss.atHour and pauseHours must be >= 0')
  }
  if (fastPeers !== undefined && !(fastPeers.fraction >= 0 && fastPeers.fraction <= 1 && fastPeers.speedup > 0 && fastPeers.sigma >= 0 && fastPeers.firstMinutes >= 0)) {
    throw new RangeError('fastPeers needs fraction in [0, 1], speedup > 0, sigma >= 0, firstMinutes >= 0')
  }
  if (shrink !== undefined && !(shrink.fraction >= 0 && shrink.fraction < 1 && shrink.hours > 0 && shrink.atHour >= 0 && shrink.regrowAtHour >= shrink.atHour + shrink.hours)) {
    throw new RangeError('shrink needs fraction in [0, 1), hours > 0, and regrowAtHour after the shrink')
  }
  if (clients !== undefined) {
    range('clients crowd', clients.crowdStart, clients.crowdEnd)
    if (!(clients.sessions >= 0 && clients.crowdSessions >= 0 && clients.tokensPerSecond > 0)) throw new RangeError('clients needs sessions >= 0, crowdSessions >= 0, tokensPerSecond > 0')
  }
}

type PlanEvent =
  | { kind: 'arrive'; fast: boolean; replaces: boolean }
  | { kind: 'leave'; plan: Omit<PeerPlan, 'id'> }
  | { kind: 'shrink' }
  | { kind: 'regrow' }

/**
 * The churn schedule, drawn in time order: initial arrivals over the ramp, a replacement for (a
 * `replacement` share of) the natural departures, then the scenario's shocks: a pause in arrivals
 * after a range loss, extra departures that are not replaced (shrink) and as many arrivals later
 * (regrow). Ids follow arrival order, so the swarm's peer list is already in the id order the
 * balancer sorts by, which keeps that sort cheap.
 */
function planPeers(config: SimulationConfig): PeerPlan[] {
  const random = mulberry32(config.seed)
  const horizon = config.hours * 60
  const meanLifetime = config.churnPerHour > 0 ? 60 / config.churnPerHour : Infinity
  const { fastPeers, shrink, rangeLoss } = config
  const queue = new EventQueue<PlanEvent>()
  const fastInitial = fastPeers === undefined ? 0 : Math.round(fastPeers.fraction * config.peers)
  for (let i = 0; i < config.peers; i++) {
    const fast = i < fastInitial
    const window = fast ? Math.min(fastPeers!.firstMinutes, config.rampMinutes) : config.rampMinutes
    queue.push(random() * window, { kind: 'arrive', fast, replaces: false })
  }
  if (shrink !== undefined) {
    queue.push(shrink.atHour * 60, { kind: 'shrink' })
    queue.push(shrink.regrowAtHour * 60, { kind: 'regrow' })
  }
  const pause = rangeLoss === undefined ? undefined : { from: rangeLoss.atHour * 60, to: (rangeLoss.atHour + rangeLoss.pauseHours) * 60 }
  const plans: Array<Omit<PeerPlan, 'id'>> = []
  const present = new Set<Omit<PeerPlan, 'id'>>()
  let lost = 0
  for (let next = queue.pop(); next !== undefined && next.time < horizon; next = queue.pop()) {
    const { time: now, event } = next
    switch (event.kind) {
      case 'arrive': {
        if (pause !== undefined && event.replaces && now >= pause.from && now < pause.to) {
          queue.push(now + (pause.to - pause.from), event)
          break
        }
        const plan = {
          arriveAt: now,
          leaveAt: now + (Number.isFinite(meanLifetime) ? exponential(random, meanLifetime) : Infinity),
          crash: random() < config.crashFraction,
          ...drawHardware(random, config, event.fast)
        }
        plans.push(plan)
        present.add(plan)
        if (plan.leaveAt < horizon) queue.push(plan.leaveAt, { kind: 'leave', plan })
        break
      }
      case 'leave': {
        // a peer that the shrink sent away earlier has no natural departure any more
        if (!present.delete(event.plan) || event.plan.leaveAt !== now) break
        if (random() < config.replacement) queue.push(now + exponential(random, config.replaceMinutes), { kind: 'arrive', fast: isFast(random, fastPeers), replaces: true })
        break
      }
      case 'shrink': {
        lost = Math.round(shrink!.fraction * present.size)
        const leaving: Array<Omit<PeerPlan, 'id'>> = []
        const candidates = [...present]
        for (let i = 0; i < lost && candidates.length > 0; i++) leaving.push(candidates.splice(uniformInt(random, 0, candidates.length), 1)[0])
        for (const plan of leaving) {
          present.delete(plan)
          plan.leaveAt = now + random() * shrink!.hours * 60
        }
        break
      }
      case 'regrow': {
        for (let i = 0; i < lost; i++) queue.push(now + random() * shrink!.hours * 60, { kind: 'arrive', fast: isFast(random, fastPeers), replaces: false })
        break
      }
    }
  }
  return plans
    .filter((p) => p.arriveAt < horizon)
    .sort((a, b) => a.arriveAt - b.arriveAt)
    .map((p, i) => ({ id: `peer-${String(i).padStart(5, '0')}`, ...p }))
}

function isFast(random: Random, fastPeers: FastPeers | undefined): boolean {
  return fastPeers !== undefined && random() < fastPeers.fraction
}

function drawHardware(random: Random, config: SimulationConfig, fast: boolean): Pick<PeerPlan, 'spanLength' | 'throughput'> {
  const memory = logNormal(random, hardware.medianMemoryBytes, hardware.memorySigma)
  // A peer too small for one block would not join; the smallest that does hosts one.
  const spanLength = Math.max(1, spanLengthForMemory(memory, hardware.bytesPerBlock, config.blocks, hardware.reserveFraction))
  const { fastPeers } = config
  if (fastPeers !== undefined) {
    // Two classes: throughput over the whole span, so that the spread is exactly the speedup.
    const base = logNormal(random, hardware.medianCompute / 12, fastPeers.sigma)
    return { spanLength, throughput: fast ? base * fastPeers.speedup : base }
  }
  const compute = logNormal(random, hardware.medianCompute, hardware.computeSigma)
  const network = logNormal(random, hardware.medianNetwork, hardware.networkSigma)
  return { spanLength, throughput: Math.min(network, compute / spanLength) }
}

function makePolicy(name: PolicyName, config: SimulationConfig): Policy {
  if (name !== 'random') {
    return {
      name,
      rebalances: name === 'balanced' || name === 'throughput-only',
      demandAware: name !== 'throughput-only',
      place: (others, plan) => chooseBestSpan(others, config.blocks, plan.spanLength)
    }
  }
  // Its own stream, so random placement cannot disturb anything else drawn from the seed.
  const random = mulberry32(config.seed ^ 0x5eed)
  return {
    name,
    rebalances: false,
    demandAware: false,
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
  const settleMinutes = config.settleHours * 60
  const peers = new Map<string, SimPeer>()
  const queue = new EventQueue<SimEvent>()
  const samples: Sample[] = []
  const moveLog: MoveRecord[] = []
  let movesSinceSample = 0
  let rangeLossVictims = 0
  // coverage, tracked at every event that can change it
  let uncovered = false
  let uncoveredSince = 0
  let uncoveredMinutes = 0
  let lossAt: number | undefined
  let restoreMinutes: number | null = null

  for (const plan of plans) {
    queue.push(plan.arriveAt, { kind: 'arrive', plan })
    if (plan.leaveAt < horizon) queue.push(plan.leaveAt, { kind: 'leave', plan })
  }
  for (let t = config.sampleMinutes; t <= horizon; t += config.sampleMinutes) queue.push(t, { kind: 'sample' })
  if (config.rangeLoss !== undefined && config.rangeLoss.atHour * 60 < horizon) queue.push(config.rangeLoss.atHour * 60, { kind: 'range-loss' })

  const scheduleCheck = (now: number, peer: SimPeer): void => {
    if (policy.rebalances) queue.push(now + checkRandom() * 2 * config.checkPeriodMinutes, { kind: 'check', id: peer.peerId, epoch: peer.epoch })
  }
  /** The peer behind a lifecycle event, unless the event belongs to a life it has since left. */
  const current = (event: { id: string; epoch: number }): SimPeer | undefined => {
    const peer = peers.get(event.id)
    return peer?.epoch === event.epoch ? peer : undefined
  }
  const trackCoverage = (now: number): void => {
    const gap = uncoveredBlocks([...peers.values()], config.blocks) > 0
    if (gap === uncovered) return
    if (gap) uncoveredSince = now
    else {
      uncoveredMinutes += Math.max(0, now - Math.max(uncoveredSince, settleMinutes))
      if (lossAt !== undefined && restoreMinutes === null) restoreMinutes = now - lossAt
    }
    uncovered = gap
  }

  for (let next = queue.pop(); next !== undefined && next.time <= horizon; next = queue.pop()) {
    const { time: now, event } = next
    switch (event.kind) {
      case 'arrive': {
        const { plan } = event
        const { start, end } = policy.place(balancerView([...peers.values()], policy), plan)
        peers.set(plan.id, { peerId: plan.id, start, end, throughput: plan.throughput, state: 'joining', plan, epoch: 0, left: new LeftSpans(config.noReturnMinutes) })
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
        trackCoverage(now)
        break
      }
      case 'range-loss': {
        const { start, end } = config.rangeLoss!
        for (const peer of [...peers.values()]) {
          if (peer.start < end && start < peer.end) {
            peers.delete(peer.peerId)
            rangeLossVictims++
          }
        }
        lossAt = now
        trackCoverage(now)
        if (!uncovered) restoreMinutes = 0
        break
      }
      case 'online': {
        const peer = current(event)
        if (peer === undefined) break
        peer.state = 'online'
        scheduleCheck(now, peer)
        trackCoverage(now)
        break
      }
      case 'check': {
        const peer = current(event)
        if (peer === undefined) break
        const decision = shouldMove(balancerView([...peers.values()], policy), config.blocks, peer, {
          balanceQuality: config.balanceQuality,
          avoid: peer.left.recent(now)
        })
        if (!decision.move) {
          scheduleCheck(now, peer)
          break
        }
        // The destination is announced at once, as joining, while the old span drains its sessions
        // and the new blocks load: peers checking meanwhile see the gap being filled and do not all
        // rush to it.
        moveLog.push({ minute: now, peerId: peer.peerId, from: { start: peer.start, end: peer.end }, to: decision.to })
        movesSinceSample++
        peer.left.add(peer, now)
        peer.epoch++
        peer.start = decision.to.start
        peer.end = decision.to.end
        peer.state = 'joining'
        queue.push(now + config.drainMinutes + config.loadMinutes, { kind: 'online', id: peer.peerId, epoch: peer.epoch })
        trackCoverage(now)
        break
      }
      case 'remove': {
        if (current(event) !== undefined) peers.delete(event.id)
        break
      }
      case 'sample': {
        const present = [...peers.values()]
        samples.push(measure(now, present, config, movesSinceSample))
        movesSinceSample = 0
        if (config.clients !== undefined && policy.demandAware) announceSessions(present, config.blocks, config.clients)
        break
      }
    }
  }
  if (uncovered) uncoveredMinutes += Math.max(0, horizon - Math.max(uncoveredSince, settleMinutes))

  const online = [...peers.values()].filter((p) => p.state === 'online')
  return {
    policy: name,
    samples,
    finalBlockThroughputs: [...blockThroughputs(online, config.blocks)],
    moves: moveLog.length,
    moveLog,
    rangeLossVictims,
    summary: { ...summarize(samples, config), uncoveredMinutes, restoreMinutes }
  }
}

/** What the balancer is shown: the peers, without their sessions unless it weighs demand. */
function balancerView(present: SimPeer[], policy: Policy): SpanInfo[] {
  return policy.demandAware ? present : present.map(({ peerId, start, end, throughput, state }) => ({ peerId, start, end, throughput, state }))
}

/** Blocks no online peer serves. */
function uncoveredBlocks(present: readonly SpanInfo[], blocks: number): number {
  const covered = new Uint8Array(blocks)
  for (const peer of present) if (peer.state === 'online') covered.fill(1, peer.start, peer.end)
  return covered.reduce((n, c) => n + (c === 0 ? 1 : 0), 0)
}

/** Sessions wanting each block. */
function blockSessions(clients: Clients, blocks: number): Float64Array {
  const wanted = new Float64Array(blocks).fill(clients.sessions)
  for (let block = clients.crowdStart; block < clients.crowdEnd; block++) wanted[block] += clients.crowdSessions
  return wanted
}

/**
 * What each online peer would announce as open sessions. A session passes each block it needs
 * through one of the block's peers, picked in proportion to throughput, and counts once at every
 * peer it passes: at a peer, about (sessions of each kind) × its largest throughput share among the
 * blocks of its span that kind needs. Refreshed at every sample, as records are now and then.
 */
function announceSessions(present: SimPeer[], blocks: number, clients: Clients): void {
  const throughputs = blockThroughputs(present.filter((p) => p.state === 'online'), blocks)
  const largestShare = (peer: SimPeer, from: number, to: number): number => {
    let share = 0
    for (let block = Math.max(from, peer.start); block < Math.min(to, peer.end); block++) share = Math.max(share, peer.throughput / throughputs[block])
    return share
  }
  for (const peer of present) {
    peer.sessions = peer.state !== 'online'
      ? 0
      : clients.sessions * largestShare(peer, 0, blocks) + clients.crowdSessions * largestShare(peer, clients.crowdStart, clients.crowdEnd)
  }
}

/**
 * Sessions served at full speed: a block serves throughput / (sessions wanting it × tokens/s each)
 * of what they want, and a session gets the share of its worst block.
 */
function servedSessions(throughputs: Float64Array, clients: Clients): number {
  const wanted = blockSessions(clients, throughputs.length)
  const share = (from: number, to: number): number => {
    let worst = 1
    for (let block = from; block < to; block++) if (wanted[block] > 0) worst = Math.min(worst, throughputs[block] / (wanted[block] * clients.tokensPerSecond))
    return worst
  }
  return clients.sessions * share(0, throughputs.length) + clients.crowdSessions * share(clients.crowdStart, clients.crowdEnd)
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
    movesPerPeerHour: present.length > 0 ? moves / present.length / (config.sampleMinutes / 60) : 0,
    servedSessions: config.clients === undefined ? 0 : servedSessions(throughputs, config.clients)
  }
}

function summarize(samples: Sample[], config: SimulationConfig): Omit<PolicySummary, 'uncoveredMinutes' | 'restoreMinutes'> {
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
    meanBestChain: mean((s) => s.bestChain),
    meanServedSessions: mean((s) => s.servedSessions)
  }
}
