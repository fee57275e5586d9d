// Every reachable peer of a model with a verified record: the DHT's providers, plus the peers
// this node is directly connected to — a DHT node does not hand out its own provider entries,
// so a bootstrap peer that serves blocks is only found by asking it.
//
// kad-dht stops a provider search at 20 providers (its k), so in a swarm of more peers the model
// key alone can leave blocks uncovered. When the caller knows the model's block count, each
// block still uncovered is looked up under its own key (one search per gap, repeated while
// gaps shrink), which finds the peers serving it however big the swarm is. The model-key search
// then gets only part of the time budget: a provider that vanished without a word (its entries
// linger in the DHT for PROVIDER_TTL_MS) holds its probe for the whole info timeout, and must not
// leave the block-key searches no time.
import type { PeerId } from '@libp2p/interface'
import type { SwarmNode } from './node.ts'
import { findBlockPeers, findModelPeers, type DiscoveredPeer } from './dht.ts'
import { fetchInfo } from './info.ts'
import { verifyRecord } from './records.ts'
import { componentLogger, type Logger } from './logger.ts'

export interface SwarmPeersOptions {
  /** the model's block count: records whose span exceeds it are dropped, and uncovered blocks are looked up */
  numBlocks?: number
  /** the model's architecture: records of another one are dropped, so no chain mixes them */
  arch?: string
  signal?: AbortSignal
  /** bound on the DHT search, ms (default 5 000); with numBlocks, the model-key search takes at most half of it and the gap searches share the rest */
  timeoutMs?: number
  /** bound on asking one connected peer, ms (default 2 000) */
  infoTimeoutMs?: number
  logger?: Logger
}

/** share of the time budget the model-key search may take when block-key searches may follow */
const MODEL_SEARCH_SHARE = 0.5

export async function findSwarmPeers (node: SwarmNode, modelId: string, opts: SwarmPeersOptions = {}): Promise<DiscoveredPeer[]> {
  const log = componentLogger('routing:swarm-peers', opts.logger)
  const timeoutMs = opts.timeoutMs ?? 5_000
  const started = performance.now()
  const modelTimeoutMs = opts.numBlocks == null ? timeoutMs : Math.ceil(timeoutMs * MODEL_SEARCH_SHARE)
  const found = await findModelPeers(node, modelId, { numBlocks: opts.numBlocks, arch: opts.arch, signal: opts.signal, timeoutMs: modelTimeoutMs, logger: opts.logger })
  const known = new Set(found.map((p) => p.record.peerId))
  const probe = async (id: PeerId): Promise<DiscoveredPeer | null> => {
    try {
      const started = performance.now()
      const bytes = await fetchInfo(node, id, { signal: opts.signal, timeoutMs: opts.infoTimeoutMs ?? 2_000 })
      const latencyMs = performance.now() - started
      return { record: verifyRecord(bytes, { expectedPeerId: id.toString(), modelId, numBlocks: opts.numBlocks, arch: opts.arch }), latencyMs }
    } catch (err) {
      log.debug({ peer: id.toString(), err: (err as Error).message }, 'connected peer has no usable record')
      return null
    }
  }
  const direct = await Promise.all(node.getPeers().filter((id) => !known.has(id.toString())).map(probe))
  const peers = [...found, ...direct.filter((p): p is DiscoveredPeer => p !== null)]
  if (opts.numBlocks == null) return peers
  return await fillGaps(node, modelId, opts.numBlocks, peers, started + timeoutMs, opts, log)
}

/**
 * Looks up the first block of every gap in the coverage of `peers` under its block key, adding
 * the peers found, until no gap is left, a round finds nothing new, or `deadlineAt`
 * (performance.now() time) passes. Returns `peers` with the additions.
 */
async function fillGaps (node: SwarmNode, modelId: string, numBlocks: number, peers: DiscoveredPeer[], deadlineAt: number, opts: SwarmPeersOptions, log: Logger): Promise<DiscoveredPeer[]> {
  const known = new Set(peers.map((p) => p.record.peerId))
  const uncovered = (): number[] => gapStarts(peers.map((p) => p.record), numBlocks)
  for (let gaps = uncovered(); gaps.length > 0; gaps = uncovered()) {
    const timeoutMs = Math.floor(deadlineAt - performance.now())
    if (timeoutMs <= 0) break
    log.debug({ gaps }, 'looking up uncovered blocks')
    // each search returns what it verified by the deadline
    const rounds = await Promise.all(gaps.map(async (block) => {
      return await findBlockPeers(node, modelId, block, { numBlocks, arch: opts.arch, signal: opts.signal, timeoutMs, skip: known, logger: opts.logger })
    }))
    let added = 0
    for (const p of rounds.flat()) {
      if (!known.has(p.record.peerId)) {
        known.add(p.record.peerId)
        peers.push(p)
        added++
      }
    }
    if (added === 0) break
  }
  return peers
}

/** First block of each maximal run of blocks in [0, numBlocks) that no span covers. */
export function gapStarts (spans: ReadonlyArray<{ start: number, end: number }>, numBlocks: number): number[] {
  const covered = new Uint8Array(numBlocks)
  for (const span of spans) {
    covered.fill(1, Math.max(0, span.start), Math.min(numBlocks, span.end))
  }
  const starts: number[] = []
  for (let b = 0; b < numBlocks; b++) {
    if (covered[b] === 0 && (b === 0 || covered[b - 1] === 1)) starts.push(b)
  }
  return starts
}
