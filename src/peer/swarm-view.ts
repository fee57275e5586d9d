// What a peer knows of the rest of the swarm when it places itself: the verified records of every
// other peer serving the model. The DHT lists providers, but a DHT node does not hand out its own
// provider entries, so peers this node is directly connected to (its bootstrap peers) are asked too.
import type { PeerRecord, SwarmNode } from '../routing/index.ts'
import { findSwarmPeers } from '../routing/swarm-peers.ts'
import type { Logger } from '../routing/logger.ts'

/** bound on one whole look-up, ms */
const DISCOVERY_TIMEOUT_MS = 5_000

/** Records of the other peers serving `modelId`; unreachable or invalid ones are left out. */
export async function swarmRecords (node: SwarmNode, modelId: string, numBlocks: number, arch: string, log: Logger, signal?: AbortSignal): Promise<PeerRecord[]> {
  return (await findSwarmPeers(node, modelId, { numBlocks, arch, signal, timeoutMs: DISCOVERY_TIMEOUT_MS, logger: log })).map((p) => p.record)
}
