// What a peer knows of the rest of the swarm when it places itself: the verified records of every
// other peer serving the model. The DHT lists providers, but a DHT node does not hand out its own
// provider entries, so peers this node is directly connected to (its bootstrap peers) are asked too.
import { fetchInfo, findModelPeers, verifyRecord, type PeerRecord, type SwarmNode } from '../routing/index.ts'
import type { Logger } from '../routing/logger.ts'

/** bound on one whole look-up, ms */
const DISCOVERY_TIMEOUT_MS = 5_000
/** bound on asking one directly connected peer, ms */
const DIRECT_INFO_TIMEOUT_MS = 2_000

/** Records of the other peers serving `modelId`; unreachable or invalid ones are left out. */
export async function swarmRecords (node: SwarmNode, modelId: string, numBlocks: number, log: Logger, signal?: AbortSignal): Promise<PeerRecord[]> {
  const found = (await findModelPeers(node, modelId, { numBlocks, signal, timeoutMs: DISCOVERY_TIMEOUT_MS })).map((p) => p.record)
  const known = new Set(found.map((r) => r.peerId))
  const direct = await Promise.all(node.getPeers().filter((id) => !known.has(id.toString())).map(async (id) => {
    try {
      const bytes = await fetchInfo(node, id, { signal, timeoutMs: DIRECT_INFO_TIMEOUT_MS })
      return verifyRecord(bytes, { expectedPeerId: id.toString(), modelId, numBlocks })
    } catch (err) {
      log.debug({ peer: id.toString(), err: (err as Error).message }, 'no record from a connected peer')
      return null
    }
  }))
  return [...found, ...direct.filter((r): r is PeerRecord => r !== null)]
}
