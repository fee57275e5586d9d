// Gathers the health report over the network: verified records of every reachable peer of the
// model (DHT providers, plus directly connected peers, whose own provider records a DHT node
// does not hand out). Peers that cannot be reached or whose records fail verification are left
// out, so a peer that left disappears at the next probe.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerId } from '@libp2p/interface'
import { fetchInfo, verifyRecord, type PeerRecord, type SwarmNode } from '../routing/index.ts'
import { findSwarmPeers } from '../routing/swarm-peers.ts'
import { componentLogger, type Logger } from '../routing/logger.ts'
import { buildHealthReport, type HealthReport, type ObservedPeer } from './health.ts'

/** bound on one info exchange with a connected peer, ms */
const INFO_TIMEOUT_MS = 2_000
/** bound on one DHT provider search, ms */
const DISCOVERY_TIMEOUT_MS = 5_000

export class HealthProbeError extends Error {
  override name = 'HealthProbeError'
}

export interface ProbeTarget {
  modelId: string
  /** the model's block count; unknown: inferred from the spans found */
  numBlocks?: number
}

export interface HealthSource {
  report (signal?: AbortSignal): Promise<HealthReport>
}

export class SwarmHealthProbe implements HealthSource {
  private readonly log: Logger

  constructor (private readonly node: SwarmNode, readonly target: ProbeTarget, logger?: Logger) {
    this.log = componentLogger('serve:health', logger)
  }

  async report (signal?: AbortSignal): Promise<HealthReport> {
    return buildHealthReport({ ...this.target, peers: await this.observe(signal) })
  }

  async observe (signal?: AbortSignal): Promise<ObservedPeer[]> {
    const { modelId, numBlocks } = this.target
    const found = await findSwarmPeers(this.node, modelId, { numBlocks, signal, timeoutMs: DISCOVERY_TIMEOUT_MS, infoTimeoutMs: INFO_TIMEOUT_MS, logger: this.log })
    const seenAt = Date.now()
    return found.map((p) => ({ ...p, seenAt }))
  }
}

/**
 * The verified record of the peer at `address` (a multiaddr, with /p2p/<id> or without: then
 * whoever answers there): tells which model a swarm serves.
 */
export async function recordOfPeer (node: SwarmNode, address: string, signal?: AbortSignal): Promise<PeerRecord> {
  try {
    const id = await peerAt(node, address, signal)
    return verifyRecord(await fetchInfo(node, id, { signal, timeoutMs: INFO_TIMEOUT_MS }), { expectedPeerId: id.toString() })
  } catch (err) {
    throw new HealthProbeError(`could not learn the model from ${address} (${(err as Error).message}); pass --model-id or --model`)
  }
}

async function peerAt (node: SwarmNode, address: string, signal?: AbortSignal): Promise<PeerId> {
  const match = /\/p2p\/([^/]+)$/.exec(address)
  if (match !== null) return peerIdFromString(match[1])
  const deadline = AbortSignal.any([AbortSignal.timeout(INFO_TIMEOUT_MS), ...(signal !== undefined ? [signal] : [])])
  return (await node.dial(multiaddr(address), { signal: deadline })).remotePeer
}

/** Reuses a recent report and shares one probe between concurrent callers. */
export class HealthMonitor implements HealthSource {
  private last: { at: number, report: HealthReport } | null = null
  private running: Promise<HealthReport> | null = null

  constructor (private readonly source: HealthSource, private readonly maxAgeMs = 1_000) {}

  async report (): Promise<HealthReport> {
    if (this.last !== null && Date.now() - this.last.at < this.maxAgeMs) return this.last.report
    this.running ??= this.source.report().then((report) => {
      this.last = { at: Date.now(), report }
      return report
    }).finally(() => { this.running = null })
    return await this.running
  }
}
