// Chain candidates from the DHT: verified records of the model's peers plus measured latency,
// cached briefly so that planning does not query the DHT on every step.
import type { SwarmNode } from './node.ts'
import type { PeerId } from '@libp2p/interface'
import { findModelPeers, type DiscoveredPeer } from './dht.ts'
import { fetchInfo } from './info.ts'
import { verifyRecord } from './records.ts'
import type { Candidate } from './planner.ts'
import type { CandidateSource } from './chain-session.ts'

export class DhtCandidates implements CandidateSource {
  private cache: { at: number, list: Candidate[] } | null = null

  constructor (
    private readonly node: SwarmNode,
    private readonly modelId: string,
    private readonly numBlocks: number,
    /** answers younger than this are reused unless a refresh is asked for, ms */
    private readonly maxAgeMs = 10_000,
    /** a refresh within this long of the last one reuses it, ms */
    private readonly minRefreshMs = 250
  ) {}

  async candidates (refresh: boolean, signal?: AbortSignal): Promise<Candidate[]> {
    const age = this.cache === null ? Infinity : Date.now() - this.cache.at
    if (this.cache !== null && age < (refresh ? this.minRefreshMs : this.maxAgeMs)) return this.cache.list
    const found = await findModelPeers(this.node, this.modelId, { numBlocks: this.numBlocks, signal, timeoutMs: 5_000 })
    // a DHT node does not hand out its own provider records, so peers we are directly connected
    // to (bootstrap peers) are asked for their records too
    const known = new Set(found.map((p) => p.record.peerId))
    const direct = await Promise.all(this.node.getPeers().filter((id) => !known.has(id.toString())).map(async (id) => await this.probe(id, signal)))
    for (const p of direct) if (p !== null) found.push(p)
    const list = found.map(({ record: r, latencyMs }) => ({
      peerId: r.peerId, multiaddrs: r.multiaddrs, start: r.start, end: r.end, latencyMs, throughput: r.throughput, cacheTokensLeft: r.cacheTokensLeft, state: r.state
    }))
    this.cache = { at: Date.now(), list }
    return list
  }

  private async probe (id: PeerId, signal?: AbortSignal): Promise<DiscoveredPeer | null> {
    try {
      const started = performance.now()
      const bytes = await fetchInfo(this.node, id, { signal, timeoutMs: 2_000 })
      const latencyMs = performance.now() - started
      return { record: verifyRecord(bytes, { expectedPeerId: id.toString(), modelId: this.modelId, numBlocks: this.numBlocks }), latencyMs }
    } catch {
      return null
    }
  }
}
