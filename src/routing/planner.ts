// Chain planning (pure logic): the cheapest sequence of peers carrying hidden states from block
// boundary `from` to `to`. A peer hosting [s, e) can serve [s, e') for any e' ≤ e (it leaves its
// span early), but never starts mid-span. Cost per hop = network latency + compute time of the
// hop's span + a penalty for peers short of cache; a small jitter spreads equal chains over
// replicas.

export interface Candidate {
  peerId: string
  multiaddrs: string[]
  start: number
  end: number
  /** measured round trip, ms */
  latencyMs: number
  /** announced tokens/s through the peer's whole span */
  throughput: number
  cacheTokensLeft: number
  state: 'joining' | 'online' | 'draining'
  /** announced weight format (f32, f16, int8, int4…): audits set their tolerance by it */
  dtype?: string
}

export interface PlannedHop { peerId: string, multiaddrs: string[], start: number, end: number }

export interface PlanOptions {
  /** peers not to use (failed recently), each with why */
  banned?: ReadonlyMap<string, string>
  /** KV positions each hop must be able to hold */
  cacheTokensNeeded?: number
  /** random source in [0, 1) for spreading load (default Math.random) */
  random?: () => number
}

export class NoRouteError extends Error {
  override name = 'NoRouteError'
  /** `excluded`: banned peers that would have served missing blocks, with why they are banned */
  constructor (readonly from: number, readonly to: number, readonly missingBlocks: number[], detail: string, readonly excluded: ReadonlyArray<{ peerId: string, reason: string }> = []) {
    super((missingBlocks.length > 0
      ? `no peer serves block${missingBlocks.length > 1 ? 's' : ''} ${formatBlocks(missingBlocks)} (needed for blocks [${from}, ${to}))`
      : `no chain of peers covers blocks [${from}, ${to}): ${detail}`) +
      (excluded.length > 0 ? `; excluded after failing: ${excluded.map((e) => `peer ${e.peerId.slice(-8)} (${e.reason})`).join(', ')}` : ''))
  }
}

/** penalty for a hop whose peer announces less free cache than needed, ms */
const LOW_CACHE_PENALTY_MS = 10_000

export function planChain (candidates: readonly Candidate[], from: number, to: number, opts: PlanOptions = {}): PlannedHop[] {
  const random = opts.random ?? Math.random
  const usable = candidates.filter((c) => c.state === 'online' && opts.banned?.has(c.peerId) !== true && c.end > from && c.start < to)
  const missing = missingBlocks(usable, from, to)
  if (missing.length > 0) {
    const excluded = [...opts.banned ?? []]
      .filter(([id]) => candidates.some((c) => c.peerId === id && c.state === 'online' && missing.some((b) => c.start <= b && b < c.end)))
      .map(([peerId, reason]) => ({ peerId, reason }))
    throw new NoRouteError(from, to, missing, '', excluded)
  }

  // Dijkstra over block boundaries from..to
  const n = to - from + 1
  const dist = new Float64Array(n).fill(Infinity)
  const prev: Array<{ c: Candidate, at: number } | null> = new Array(n).fill(null)
  const done = new Uint8Array(n)
  dist[0] = 0
  for (;;) {
    let u = -1
    for (let i = 0; i < n; i++) if (done[i] === 0 && dist[i] < Infinity && (u < 0 || dist[i] < dist[u])) u = i
    if (u < 0) break
    done[u] = 1
    const boundary = from + u
    for (const c of usable) {
      if (c.start !== boundary) continue
      const cost = hopCost(c, opts.cacheTokensNeeded ?? 0) * (1 + 0.05 * random())
      for (let e = c.start + 1; e <= Math.min(c.end, to); e++) {
        const v = e - from
        if (dist[u] + cost < dist[v]) { dist[v] = dist[u] + cost; prev[v] = { c, at: u } }
      }
    }
  }
  if (dist[n - 1] === Infinity) {
    const starts = [...new Set(usable.map((c) => c.start))].sort((a, b) => a - b)
    throw new NoRouteError(from, to, [], `the peers covering these blocks start their spans at ${starts.join(', ')}, and a chain must enter each span at its first block`)
  }
  const hops: PlannedHop[] = []
  for (let v = n - 1; v > 0;) {
    const p = prev[v]!
    hops.unshift({ peerId: p.c.peerId, multiaddrs: p.c.multiaddrs, start: from + p.at, end: from + v })
    v = p.at
  }
  return hops
}

function hopCost (c: Candidate, cacheNeeded: number): number {
  const computeMs = 1000 / Math.max(c.throughput, 1e-3)
  return c.latencyMs + computeMs + (c.cacheTokensLeft < cacheNeeded ? LOW_CACHE_PENALTY_MS : 0)
}

function missingBlocks (usable: readonly Candidate[], from: number, to: number): number[] {
  const missing: number[] = []
  for (let b = from; b < to; b++) if (!usable.some((c) => c.start <= b && b < c.end)) missing.push(b)
  return missing
}

/** [1, 2, 3, 7] → "1-3, 7" */
export function formatBlocks (blocks: number[]): string {
  const parts: string[] = []
  for (let i = 0; i < blocks.length;) {
    let j = i
    while (j + 1 < blocks.length && blocks[j + 1] === blocks[j] + 1) j++
    parts.push(i === j ? `${blocks[i]}` : `${blocks[i]}-${blocks[j]}`)
    i = j + 1
  }
  return parts.join(', ')
}
