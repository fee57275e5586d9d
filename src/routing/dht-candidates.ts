// Chain candidates from the swarm: verified records of the model's peers (same model id and
// architecture, so a chain never mixes models or architectures) plus measured latency,
// cached briefly so that planning does not query the DHT on every step.
import type { SwarmNode } from './node.ts'
import { findSwarmPeers } from './swarm-peers.ts'
import type { Candidate } from './planner.ts'
import type { CandidateSource } from './chain-session.ts'

export class DhtCandidates implements CandidateSource {
  private cache: { at: number, list: Candidate[] } | null = null

  constructor (
    private readonly node: SwarmNode,
    private readonly modelId: string,
    private readonly numBlocks: number,
    /** the client's model architecture: peers announcing another are never candidates */
    private readonly arch: string,
    /** answers younger than this are reused unless a refresh is asked for, ms */
    private readonly maxAgeMs = 10_000,
    /** a refresh within this long of the last one reuses it, ms */
    private readonly minRefreshMs = 250
  ) {}

  async candidates (refresh: boolean, signal?: AbortSignal): Promise<Candidate[]> {
    const age = this.cache === null ? Infinity : Date.now() - this.cache.at
    if (this.cache !== null && age < (refresh ? this.minRefreshMs : this.maxAgeMs)) return this.cache.list
    const found = await findSwarmPeers(this.node, this.modelId, { numBlocks: this.numBlocks, arch: this.arch, signal })
    const list = found.map(({ record: r, latencyMs }) => ({
      peerId: r.peerId, multiaddrs: r.multiaddrs, start: r.start, end: r.end, latencyMs, throughput: r.throughput, cacheTokensLeft: r.cacheTokensLeft, state: r.state, dtype: r.dtype
    }))
    this.cache = { at: Date.now(), list }
    return list
  }

  known (): Candidate[] | null {
    return this.cache?.list ?? null
  }
}
