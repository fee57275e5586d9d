// The swarm health report (contract of `strata health --json` and the gateway's GET /health),
// built from verified peer records. Pure: no network.
import type { PeerRecord, PeerState } from '../routing/index.ts'

/** A verified record and when / how fast it was fetched. */
export interface ObservedPeer {
  record: PeerRecord
  /** round trip of the info exchange, ms */
  latencyMs: number
  /** when the record was fetched, ms since the epoch */
  seenAt: number
}

export interface BlockHealth {
  index: number
  /** online peers serving the block */
  peers: number
  /** sum of their announced throughputs, tokens/s */
  throughput: number
}

export interface PeerHealth {
  peerId: string
  start: number
  /** exclusive */
  end: number
  state: PeerState
  throughput: number
  multiaddrs: string[]
  version: string
  /** ISO 8601 */
  lastSeen: string
  latencyMs: number
  cacheTokensLeft: number
  /** block architecture (config.json model_type) */
  arch: string
  dtype: string
  /** ISO 8601: the record is void after this */
  expiresAt: string
  /** inference sessions open on the peer (absent when its record does not say) */
  sessions?: number
  /** its session slots (absent when its record does not say) */
  maxSessions?: number
}

export interface HealthReport {
  model: string
  blocks: BlockHealth[]
  peers: PeerHealth[]
  numBlocks: number
  /** false when the block count was inferred from the records (blocks past the last span are unknown) */
  numBlocksKnown: boolean
  /** blocks no online peer serves */
  missingBlocks: number[]
  /** ISO 8601 */
  generatedAt: string
}

export interface HealthInput {
  modelId: string
  /** the model's block count; when unknown, the largest span end among the records */
  numBlocks?: number
  peers: readonly ObservedPeer[]
  now?: number
}

export function buildHealthReport (input: HealthInput): HealthReport {
  const latest = new Map<string, ObservedPeer>()
  for (const p of input.peers) {
    if (p.record.modelId !== input.modelId) continue
    const known = latest.get(p.record.peerId)
    if (known === undefined || p.record.seq > known.record.seq) latest.set(p.record.peerId, p)
  }
  const observed = [...latest.values()]
  const numBlocks = input.numBlocks ?? Math.max(0, ...observed.map((p) => p.record.end))
  const blocks: BlockHealth[] = Array.from({ length: numBlocks }, (_, index) => ({ index, peers: 0, throughput: 0 }))
  for (const { record: r } of observed) {
    if (r.state !== 'online') continue
    for (let b = r.start; b < Math.min(r.end, numBlocks); b++) {
      blocks[b].peers++
      blocks[b].throughput += r.throughput
    }
  }
  const peers = observed
    .sort((a, b) => a.record.start - b.record.start || a.record.end - b.record.end || a.record.peerId.localeCompare(b.record.peerId))
    .map(({ record: r, latencyMs, seenAt }): PeerHealth => ({
      peerId: r.peerId,
      start: r.start,
      end: r.end,
      state: r.state,
      throughput: r.throughput,
      multiaddrs: r.multiaddrs,
      version: r.version,
      lastSeen: new Date(seenAt).toISOString(),
      latencyMs,
      cacheTokensLeft: r.cacheTokensLeft,
      arch: r.arch,
      dtype: r.dtype,
      expiresAt: new Date(r.expiresAt).toISOString(),
      ...(r.sessions !== undefined ? { sessions: r.sessions } : {}),
      ...(r.maxSessions !== undefined ? { maxSessions: r.maxSessions } : {})
    }))
  return {
    model: input.modelId,
    blocks,
    peers,
    numBlocks,
    numBlocksKnown: input.numBlocks !== undefined,
    missingBlocks: blocks.filter((b) => b.peers === 0).map((b) => b.index),
    generatedAt: new Date(input.now ?? Date.now()).toISOString()
  }
}
