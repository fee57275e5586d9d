// Live rebalancing (Petals §3.2): an online peer that chose its own blocks checks now and then,
// at randomised times so that peers do not all move at once, whether moving would raise the
// swarm's weakest block by enough (shouldMove, with hysteresis); if so it moves. The decision is
// the pure load balancer's; this module only gathers the records, times the checks and calls back.
// It follows the simulator's rules: demand (sessions announced in the records) is weighed, and a
// peer never moves back onto blocks it left less than `noReturnMs` ago (LeftSpans).
import { LeftSpans, shouldMove, type BlockRange, type MoveDecision, type SpanInfo } from '../loadbalance/index.ts'
import type { PeerRecord } from '../routing/index.ts'
import type { Logger } from '../routing/logger.ts'

export interface RebalanceConfig {
  /** mean time between checks, ms */
  intervalMs: number
  /** each wait is intervalMs × (1 ± jitter), uniformly */
  jitter: number
  /** move only if the weakest block now is below this fraction of what moving reaches (Petals' balance_quality) */
  balanceQuality: number
  /** never move onto blocks left less than this long ago, ms */
  noReturnMs: number
}

export const rebalanceDefaults: RebalanceConfig = { intervalMs: 60_000, jitter: 0.5, balanceQuality: 0.75, noReturnMs: 3_600_000 }

/** What the rebalancer needs from its peer. */
export interface RebalanceHost {
  /** the peer as the balancer should see it now */
  self: () => SpanInfo
  numBlocks: number
  /** the other peers' current records */
  records: (signal: AbortSignal) => Promise<PeerRecord[]>
  /** drains, loads `to`, announces it; resolves once online there again */
  move: (to: BlockRange, reason: string, signal: AbortSignal) => Promise<void>
  log: Logger
}

/** What the load balancer reads from a record: span, state, throughput and open sessions (demand). */
export function spanInfo (r: PeerRecord): SpanInfo {
  return { peerId: r.peerId, start: r.start, end: r.end, throughput: r.throughput, state: r.state, sessions: r.sessions }
}

/**
 * Whether `self` should move, given the swarm's records (its own record, if listed, is replaced by
 * `self`), never onto blocks of the `avoid` spans.
 */
export function rebalanceDecision (records: readonly PeerRecord[], self: SpanInfo, numBlocks: number, balanceQuality: number, avoid: readonly BlockRange[] = []): MoveDecision {
  const others = records.filter((r) => r.peerId !== self.peerId).map(spanInfo)
  return shouldMove(others, numBlocks, self, { balanceQuality, avoid })
}

/** The next wait, ms: intervalMs × (1 ± jitter). */
export function nextCheckDelayMs (cfg: RebalanceConfig, random: () => number): number {
  return cfg.intervalMs * (1 + cfg.jitter * (2 * random() - 1))
}

export class Rebalancer {
  private readonly controller = new AbortController()
  private timer?: NodeJS.Timeout
  private running: Promise<unknown> = Promise.resolve()
  private readonly left: LeftSpans

  constructor (private readonly host: RebalanceHost, private readonly cfg: RebalanceConfig = rebalanceDefaults) {
    this.left = new LeftSpans(cfg.noReturnMs)
  }

  /** Schedules the checks until stop(). */
  start (): void {
    this.schedule()
  }

  /** Stops checking; waits for a running check (and the move it started) to finish. */
  async stop (): Promise<void> {
    this.controller.abort()
    clearTimeout(this.timer)
    await this.running
  }

  /** One check: fetch the records, decide, move if worth it. */
  async check (): Promise<MoveDecision> {
    const { signal } = this.controller
    const records = await this.host.records(signal)
    const decision = rebalanceDecision(records, this.host.self(), this.host.numBlocks, this.cfg.balanceQuality, this.left.recent(Date.now()))
    signal.throwIfAborted()
    if (!decision.move) {
      this.host.log.debug({ reason: decision.reason }, 'staying on these blocks')
      return decision
    }
    const self = this.host.self()
    this.host.log.info({ from: [self.start, self.end], to: [decision.to.start, decision.to.end], reason: decision.reason }, 'moving to other blocks')
    this.left.add(self, Date.now())
    await this.host.move(decision.to, decision.reason, signal)
    return decision
  }

  private schedule (): void {
    if (this.controller.signal.aborted) return
    this.timer = setTimeout(() => {
      this.running = this.check()
        .catch((err: Error) => { if (!this.controller.signal.aborted) this.host.log.warn({ err: err.message }, 'rebalancing check failed') })
        .finally(() => { this.schedule() })
    }, nextCheckDelayMs(this.cfg, Math.random))
    this.timer.unref()
  }
}
