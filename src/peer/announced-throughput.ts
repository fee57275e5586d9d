// The throughput a joining peer announces: compute (from the on-disk cache, or timed on its span
// and cached) and network (--network-mbps, or an echo off a bootstrap peer), combined as
// min(compute, network) like Petals. Without either a network figure, compute alone counts.
import { multiaddr } from '@multiformats/multiaddr'
import type { SwarmNode } from '../routing/index.ts'
import type { Logger } from '../routing/logger.ts'
import type { WorkerSpanEngine } from '../shards/worker/engine-client.ts'
import { defaultEchoProbe, mbpsToBytesPerSecond, measureEchoBandwidth, networkTokensPerSecond } from './network.ts'
import { computeKey, ThroughputCache } from './throughput-cache.ts'
import { measureBlockThroughput, spanThroughput } from './throughput.ts'

export interface PeerThroughput {
  /** what the record says: min(compute, network), tokens/s through the whole span */
  announced: number
  /** tokens/s the span's compute sustains */
  compute: number
  /** tokens/s the network carries; null when unknown */
  network: number | null
  /** the compute figure came from the cache */
  cached: boolean
}

export interface ThroughputSources {
  modelId: string
  /** compute threads as configured (undefined: onnxruntime's default) */
  threads?: number
  /** directory of throughput.json */
  cacheDir: string
  /** the operator's link speed, Mbit/s; when given, nothing is measured */
  networkMbps?: number
  /** peers to measure the network against, tried in order */
  bootstrap: string[]
}

export async function peerThroughput (engine: WorkerSpanEngine, node: SwarmNode, src: ThroughputSources, log: Logger): Promise<PeerThroughput> {
  const cache = new ThroughputCache(src.cacheDir, log)
  const key = computeKey(src.modelId, engine.info.weightFormat, src.threads)
  const hit = cache.get(key)
  const block = hit?.blockTokensPerSecond ?? await measureBlockThroughput(engine)
  if (hit === undefined) cache.set(key, block)
  const spanLength = engine.end - engine.start
  const network = await networkThroughput(node, engine.config.hiddenSize, src, log)
  const result = { announced: spanThroughput(block, spanLength, network ?? undefined), compute: spanThroughput(block, spanLength), network, cached: hit !== undefined }
  log.info({ ...result, blockTokensPerSecond: block, cacheFile: cache.file }, 'throughput')
  return result
}

async function networkThroughput (node: SwarmNode, hiddenSize: number, src: ThroughputSources, log: Logger): Promise<number | null> {
  if (src.networkMbps !== undefined) return networkTokensPerSecond(mbpsToBytesPerSecond(src.networkMbps), hiddenSize)
  for (const addr of src.bootstrap) {
    try {
      const signal = AbortSignal.timeout(defaultEchoProbe.timeoutMs)
      const bytesPerSecond = await measureEchoBandwidth(node, multiaddr(addr), hiddenSize, { ...defaultEchoProbe, signal })
      log.debug({ peer: addr, mbps: bytesPerSecond * 8 / 1e6 }, 'network measured')
      return networkTokensPerSecond(bytesPerSecond, hiddenSize)
    } catch (err) {
      log.warn({ peer: addr, err: (err as Error).message }, 'could not measure the network against this peer')
    }
  }
  return null
}
