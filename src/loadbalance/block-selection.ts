// Which blocks a peer should host, and when it should move: Petals §3.2
// (petals/server/block_selection.py), as pure functions over the swarm's announced spans.
//
// The swarm can serve no more tokens/s than its weakest block, so every decision here is about
// raising the minimum of the per-block throughput: joining peers take the weakest window, and online
// peers move only when the swarm as a whole could become clearly better balanced (hysteresis), so a
// balanced swarm stays put.
//
// Demand: when peers announce their open sessions, a block's throughput is divided by how crowded it
// is (its sessions over the mean block's, never below 1), so a block that clients wait on looks
// weaker than one with the same throughput and no queue, and the same rules send peers there.
import type { BlockRange, SpanInfo } from './types.ts'

/**
 * Slack borrowed from Petals. A peer judging its own position takes its throughput out times
 * (1 + EPS): floating-point noise can then never make its own blocks look better served than they
 * are, and among otherwise equal windows it keeps the one it already hosts. Also the throughput below
 * which a block counts as uncovered, and the margin on the balance-quality comparison.
 */
const EPS = 1e-3

/**
 * Cap on the passes of the "let every peer re-choose" loop. Petals loops until nobody moves; the
 * EPS preference for staying makes a cycle unlikely, but a peer must never hang on one.
 */
const MAX_RECHOOSE_PASSES = 50

export interface ShouldMoveOptions {
  /**
   * Move only if the weakest block now is below this fraction of what rebalancing would reach
   * (Petals' `balance_quality`, default there 0.75). Lower: fewer, larger moves.
   */
  balanceQuality: number
  /**
   * Spans the peer left recently (see LeftSpans): no destination may share a block with them, so a
   * peer never moves back and forth between two places. Ignored while some block has no peer at all:
   * covering it comes first. Default none.
   */
  avoid?: readonly BlockRange[]
}

/**
 * `to`: where the peer should go; it announces that span as `joining` while its old one drains.
 * `gain`: weakest block throughput after rebalancing / before (Infinity when a gap would be closed,
 * 1 when not evaluated). `reason`: why, in words, for logs and the `rebalanced` event.
 */
export type MoveDecision =
  | { move: true; to: BlockRange; gain: number; reason: string }
  | { move: false; to?: undefined; gain: number; reason: string }

/**
 * Summed throughput of every block. Joining peers count (so simultaneous joiners spread out),
 * draining peers do not (they take no new sessions). Spans are clipped to `[0, numBlocks)`.
 */
export function blockThroughputs(spans: readonly SpanInfo[], numBlocks: number): Float64Array {
  checkBlockCount(numBlocks)
  return sumThroughputs(counted(spans), numBlocks)
}

/**
 * The `spanLength` blocks a newcomer should host (Petals' rule). `spans` must not contain the
 * caller's own span. Picks the window whose throughputs, sorted ascending, are lexicographically
 * smallest: the one holding the weakest blocks, so uncovered blocks are filled first (as many as the
 * window reaches). Ties go to the lowest start.
 *
 * The newcomer's own throughput does not matter: for any positive throughput this window is also the
 * one that leaves the whole swarm's sorted throughputs lexicographically largest after joining
 * (highest minimum, then highest second-weakest block, ...). Two windows differ only in the blocks
 * they do not share, and whichever holds the smallest of those leaves it behind if not chosen.
 */
export function chooseBestSpan(spans: readonly SpanInfo[], numBlocks: number, spanLength: number): BlockRange {
  checkBlockCount(numBlocks)
  if (!Number.isInteger(spanLength) || spanLength < 1) throw new RangeError(`spanLength must be a positive integer, got ${spanLength}`)
  const length = Math.min(spanLength, numBlocks)
  const swarm = counted(spans)
  const start = weakestWindowStart(effective(sumThroughputs(swarm, numBlocks), demandWeights(swarm, numBlocks)), length, newScratch(numBlocks))
  return { start, end: start + length }
}

/**
 * How much more crowded each block is than the average block: its open sessions (summed over the
 * non-draining peers serving it) over the mean block's, never below 1. All ones when nobody
 * announces sessions. A block's throughput divided by this is what the balancer maximises.
 */
export function demandWeights(spans: readonly SpanInfo[], numBlocks: number): Float64Array {
  checkBlockCount(numBlocks)
  const swarm = counted(spans)
  const sessions = new Float64Array(numBlocks)
  for (const s of swarm) {
    if (!(s.sessions !== undefined && s.sessions > 0)) continue
    for (let block = Math.max(0, s.start); block < Math.min(numBlocks, s.end); block++) sessions[block] += s.sessions
  }
  const average = mean(sessions)
  const weights = new Float64Array(numBlocks).fill(1)
  if (average > 0) for (let block = 0; block < numBlocks; block++) weights[block] = Math.max(1, sessions[block] / average)
  return weights
}

/**
 * Petals' `should_choose_other_blocks`: take `self` out of the swarm, let it re-choose, then let every
 * peer re-choose in turn until nobody moves; move only if that would raise the weakest block enough:
 * `before < balanceQuality * after`. Only online peers rebalance. `spans` may or may not contain `self`.
 */
export function shouldMove(spans: readonly SpanInfo[], numBlocks: number, self: SpanInfo, opts: ShouldMoveOptions): MoveDecision {
  checkBlockCount(numBlocks)
  if (self.state !== 'online') return stay(`only online peers rebalance (this one is ${self.state})`)
  const swarm = counted(withSelf(spans, self))
  const weights = demandWeights(swarm, numBlocks)
  const throughputs = effective(sumThroughputs(swarm, numBlocks), weights)
  const before = minimum(throughputs)
  const average = mean(throughputs)
  // No arrangement can lift the weakest block above the mean, so when even the mean would not clear
  // the hysteresis there is nothing to simulate. This keeps the frequent checks of a healthy swarm cheap.
  if (before >= (opts.balanceQuality - EPS) * average) return stay(`balanced enough: weakest block is ${pct(before / average)} of the mean`)
  const all = placements(swarm, numBlocks)
  const own = all.find((p) => p.peerId === self.peerId)
  if (own === undefined) return stay('own span lies outside the model')

  const scratch = newScratch(numBlocks)
  takeOut(throughputs, weights, own)
  if (before > EPS && minimum(throughputs) <= 0) return stay('leaving would uncover a block')
  // covering blocks nobody serves comes before the no-return rule
  const avoid = before > EPS ? opts.avoid ?? [] : []
  const allowed = avoid.length === 0 ? undefined : (start: number): boolean => start === own.start || !avoid.some((r) => start < r.end && r.start < start + own.length)
  const target = weakestWindowStart(throughputs, own.length, scratch, allowed)
  if (target === own.start) {
    const blocked = allowed !== undefined && weakestWindowStart(throughputs, own.length, scratch) !== own.start
    return stay(blocked ? 'the blocks that need it more overlap a span this peer left recently' : 'already on the best blocks')
  }
  putBack(throughputs, weights, own, target)
  const to = { start: target, end: target + own.length }

  rechooseUntilStable(throughputs, weights, all, scratch)
  const after = minimum(throughputs)
  const gain = before > 0 ? after / before : Infinity
  if (after < before || after < EPS) return stay('rebalancing would not raise the weakest block', gain)
  const quality = before / after
  const summary = `weakest block ${before.toFixed(1)} -> ${after.toFixed(1)} tok/s`
  if (quality < opts.balanceQuality - EPS) return { move: true, to, gain, reason: `${summary} after rebalancing` }
  return stay(`balanced enough: ${summary} is within ${pct(opts.balanceQuality)} (now ${pct(quality)})`, gain)
}

/**
 * How many blocks fit in `bytesAvailable` after keeping `reserveFraction` of it for activations and
 * attention caches. 0 means the peer cannot host even one block.
 */
export function spanLengthForMemory(bytesAvailable: number, bytesPerBlock: number, numBlocks: number, reserveFraction: number): number {
  checkBlockCount(numBlocks)
  if (!(bytesPerBlock > 0)) throw new RangeError(`bytesPerBlock must be positive, got ${bytesPerBlock}`)
  if (!(reserveFraction >= 0 && reserveFraction < 1)) throw new RangeError(`reserveFraction must be in [0, 1), got ${reserveFraction}`)
  const usable = Math.max(0, bytesAvailable) * (1 - reserveFraction)
  return Math.min(numBlocks, Math.floor(usable / bytesPerBlock))
}

/** A span as the re-choosing simulation sees it: position changes, length and throughput do not. */
interface Placement {
  readonly peerId: string
  start: number
  readonly length: number
  readonly throughput: number
}

function stay(reason: string, gain = 1): MoveDecision {
  return { move: false, gain, reason }
}

/**
 * Non-draining spans in peer-id order: summing in a fixed order makes every peer compute
 * bit-identical throughputs from the same announcements (Petals sorts for the same reason), so
 * rounding never tips one of them into moving.
 */
function counted(spans: readonly SpanInfo[]): SpanInfo[] {
  return spans
    .filter((s) => s.state !== 'draining')
    .sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
}

/** `spans` with `self` as given here rather than as last announced (appended if not announced yet). */
function withSelf(spans: readonly SpanInfo[], self: SpanInfo): SpanInfo[] {
  let announced = false
  const all = spans.map((s) => {
    if (s.peerId !== self.peerId) return s
    announced = true
    return self
  })
  if (!announced) all.push(self)
  return all
}

/** Spans clipped to the model, as the re-choosing simulation moves them. */
function placements(spans: readonly SpanInfo[], numBlocks: number): Placement[] {
  return spans.flatMap((s) => {
    const start = Math.max(0, s.start)
    const end = Math.min(numBlocks, s.end)
    return end > start ? [{ peerId: s.peerId, start, length: end - start, throughput: s.throughput }] : []
  })
}

function sumThroughputs(spans: readonly SpanInfo[], numBlocks: number): Float64Array {
  const throughputs = new Float64Array(numBlocks)
  for (const s of spans) {
    for (let block = Math.max(0, s.start); block < Math.min(numBlocks, s.end); block++) throughputs[block] += s.throughput
  }
  return throughputs
}

/** Per-block throughput divided by the demand weight, in place. */
function effective(throughputs: Float64Array, weights: Float64Array): Float64Array {
  for (let block = 0; block < throughputs.length; block++) throughputs[block] /= weights[block]
  return throughputs
}

function addPlacement(throughputs: Float64Array, weights: Float64Array, p: Placement, amount: number): void {
  for (let block = p.start; block < p.start + p.length; block++) throughputs[block] += amount / weights[block]
}

/** Remove a peer, over-subtracting by EPS so that its current window looks (slightly) weakest. */
function takeOut(throughputs: Float64Array, weights: Float64Array, p: Placement): void {
  addPlacement(throughputs, weights, p, -p.throughput * (1 + EPS))
}

/** Undo takeOut's over-subtraction and add the peer back at `start`. */
function putBack(throughputs: Float64Array, weights: Float64Array, p: Placement, start: number): void {
  addPlacement(throughputs, weights, p, p.throughput * EPS)
  p.start = start
  addPlacement(throughputs, weights, p, p.throughput)
}

/** Every peer in turn takes itself out and re-chooses, until a full pass moves nobody. */
function rechooseUntilStable(throughputs: Float64Array, weights: Float64Array, all: Placement[], scratch: Scratch): void {
  for (let pass = 0; pass < MAX_RECHOOSE_PASSES; pass++) {
    let moved = false
    for (const p of all) {
      takeOut(throughputs, weights, p)
      const start = weakestWindowStart(throughputs, p.length, scratch)
      if (start !== p.start) moved = true
      putBack(throughputs, weights, p, start)
    }
    if (!moved) return
  }
}

/** Buffers for weakestWindowStart, which runs thousands of times per rebalance check. */
interface Scratch {
  windowMins: Float64Array
  deque: Int32Array
  /** The two sides of a window comparison. */
  best: Float64Array
  candidate: Float64Array
}

function newScratch(numBlocks: number): Scratch {
  return {
    windowMins: new Float64Array(numBlocks),
    deque: new Int32Array(numBlocks),
    best: new Float64Array(numBlocks),
    candidate: new Float64Array(numBlocks)
  }
}

/**
 * Petals' `_choose_best_start`: the window whose sorted throughputs are lexicographically smallest.
 * A window with a lower minimum always wins, so only windows sharing the lowest minimum are compared.
 * Only starts that `allowed` accepts compete; -1 when none does.
 */
function weakestWindowStart(throughputs: Float64Array, length: number, scratch: Scratch, allowed?: (start: number) => boolean): number {
  const starts = throughputs.length - length + 1
  const windowMins = scratch.windowMins.subarray(0, starts)
  windowMinima(throughputs, length, windowMins, scratch.deque)
  if (allowed !== undefined) for (let s = 0; s < starts; s++) if (!allowed(s)) windowMins[s] = Infinity
  const lowest = minimum(windowMins)
  if (lowest === Infinity) return -1
  let best = -1
  for (let s = 0; s < starts; s++) {
    if (windowMins[s] !== lowest) continue
    if (best < 0 || compareWindows(throughputs, best, s, length, scratch) > 0) best = s
  }
  return best
}

/**
 * Sorted window at `a` versus sorted window at `b > a`, lexicographically, looking only at the blocks
 * they do not share: for equal-size multisets A = C + X and B = C + Y, sorted A compares to sorted B
 * as sorted X to sorted Y (the first value whose multiplicity differs decides both). Overlapping
 * candidates, the common case, thus cost a sort of a few values instead of two whole windows.
 */
function compareWindows(throughputs: Float64Array, a: number, b: number, length: number, scratch: Scratch): number {
  const unshared = Math.min(b - a, length)
  const x = scratch.best.subarray(0, unshared)
  const y = scratch.candidate.subarray(0, unshared)
  x.set(throughputs.subarray(a, a + unshared))
  y.set(throughputs.subarray(b + length - unshared, b + length))
  return compareLex(x.sort(), y.sort())
}

/** Minimum of every window of `length` values, in O(n) with a monotonic deque of indices. */
function windowMinima(values: Float64Array, length: number, out: Float64Array, deque: Int32Array): void {
  let head = 0
  let tail = 0
  for (let i = 0; i < values.length; i++) {
    while (tail > head && values[deque[tail - 1]] >= values[i]) tail--
    deque[tail++] = i
    if (deque[head] <= i - length) head++
    if (i >= length - 1) out[i - length + 1] = values[deque[head]]
  }
}

function compareLex(a: Float64Array, b: Float64Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i]
  return 0
}

function minimum(values: Float64Array): number {
  let min = Infinity
  for (const v of values) if (v < min) min = v
  return min
}

function mean(values: Float64Array): number {
  let sum = 0
  for (const v of values) sum += v
  return sum / values.length
}

function checkBlockCount(numBlocks: number): void {
  if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new RangeError(`numBlocks must be a positive integer, got ${numBlocks}`)
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`
}
