// Every reachable peer of a model with a verified record: the DHT's providers, plus the peers
// this node is directly connected to — a DHT node does not hand out its own provider entries,
// so a bootstrap peer that serves blocks is only found by asking it.
import type { PeerId } from '@libp2p/interface'
import type { SwarmNode } from './node.ts'
import { findModelPeers, type DiscoveredPeer } from './dht.ts'
import { fetchInfo } from './info.ts'
import { verifyRecord } from './records.ts'
import { componentLogger, type Logger } from './logger.ts'

export interface SwarmPeersOptions {
  /** the model's block count: records whose span exceeds it are dropped */
  numBlocks?: number
  /** the model's architecture: records of another one are dropped, so no chain mixes them */
  arch?: string
  signal?: AbortSignal
  /** bound on the DHT search, ms (default 5 000) */
  timeoutMs?: number
  /** bound on asking one connected peer, ms (default 2 000) */
  infoTimeoutMs?: number
  logger?: Logger
}

export async function findSwarmPeers (node: SwarmNode, modelId: string, opts: SwarmPeersOptions = {}): Promise<DiscoveredPeer[]> {
  const log = componentLogger('routing:swarm-peers', opts.logger)
  const found = await findModelPeers(node, modelId, { numBlocks: opts.numBlocks, arch: opts.arch, signal: opts.signal, timeoutMs: opts.timeoutMs ?? 5_000, logger: opts.logger })
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
  return [...found, ...direct.filter((p): p is DiscoveredPeer => p !== null)]
}
