// Everything a peer daemon can be told, with units and defaults.
import type { WeightFormat } from '../shards/span-graph.ts'
import type { Logger } from '../routing/logger.ts'
import type { RelayMode } from '../routing/index.ts'

export type Fault = 'corrupt' | 'slow' | 'drop'

export interface PeerConfig {
  /** Hugging Face model directory (only the hosted blocks' tensors are read) */
  modelDir: string
  /** model id announced in the DHT (default: derived from config.json, see modelIdFor) */
  modelId?: string
  /** host exactly these blocks [start, end) (default: chosen by the load balancer) */
  blocks?: [number, number]
  /** host this many blocks, placed by the load balancer */
  numBlocks?: number
  /** without blocks/numBlocks: host as many blocks as fit this many bytes of weights (default: half the free memory) */
  maxMemoryBytes?: number
  /** libp2p listen multiaddrs (default ['/ip4/127.0.0.1/tcp/0']) */
  listen?: string[]
  /** bootstrap multiaddrs (default none: this peer starts a new swarm) */
  bootstrap?: string[]
  /** relay for peers behind NAT: 'auto' (default: when this peer has a public address), 'on', 'off' */
  relay?: RelayMode
  /** announce loopback and private addresses even in a swarm whose members cannot dial them */
  announcePrivate?: boolean
  /** addresses to announce instead of the listening ones (see SwarmNodeOptions.announce) */
  announce?: string[]
  /** behind NAT: wait this long for a relay slot before giving up, ms (default 30 000) */
  reachableTimeoutMs?: number
  /** file holding the peer's private key, created on first run (default: a fresh identity) */
  identityFile?: string
  /** concurrent inference sessions at most (default 16) */
  maxSessions?: number
  /** KV-cache memory budget in bytes; sessions that would exceed it are refused as busy (default 1 GiB) */
  cacheBytes?: number
  /** sessions one remote peer id may hold (default: a quarter of maxSessions, at most 4) */
  maxSessionsPerPeer?: number
  /** sessions one remote IP address may hold (default: half of maxSessions, at most 8) */
  maxSessionsPerIp?: number
  /** KV-cache bytes one remote peer id may hold (default: a quarter of cacheBytes) */
  cacheBytesPerPeer?: number
  /** KV-cache bytes one remote IP address may hold (default: half of cacheBytes) */
  cacheBytesPerIp?: number
  /** session-protocol streams one remote peer id may hold open; more are reset unread (default: its session share + 4) */
  maxStreamsPerPeer?: number
  /** session opens per second one remote peer id may make, bursts of twice that; more are refused busy (default 20) */
  maxOpensPerPeerPerSecond?: number
  /** messages per second one remote peer id may send over all its sessions, bursts of twice that; reading waits beyond it (default 1000) */
  maxMessagesPerPeerPerSecond?: number
  /** a remote that breaks the wire protocol is disconnected and shut out this long, by peer id and (direct connections) by address, ms; 0 = never (default 60 000) */
  protocolBanMs?: number
  /** a session with no message for this long is closed, ms (default 60 000) */
  idleTimeoutMs?: number
  /** a session with no step this long after `open` is closed and its reservation released, ms (default 5 000) */
  firstStepTimeoutMs?: number
  /** a session with a message this recent (or a step in flight) is in active use and never evicted for a newcomer, ms (default 2 000) */
  activeWindowMs?: number
  /** KV-cache reservations grow by this many tokens at a time (default 128) */
  reserveChunkTokens?: number
  /** on shutdown, wait at most this long for open sessions to end or be handed back, ms (default 5 000) */
  drainTimeoutMs?: number
  /** lifetime of a signed record, ms (default 60 000); refreshed well before it expires */
  recordTtlMs?: number
  /** accept config.json keys strata does not know (the CLI's --allow-unknown-config; callers warn) */
  allowUnknownConfig?: boolean
  /** how matrix weights are stored (default: the checkpoint's dtype) */
  weightFormat?: WeightFormat
  /** compute threads (default: all cores) */
  threads?: number
  /** mean time between rebalancing checks of a peer without `blocks`, ms, ±50% at random (default 60 000) */
  rebalanceIntervalMs?: number
  /** the link's speed, Mbit/s, for the announced throughput (default: measured against a bootstrap peer) */
  networkMbps?: number
  /** where measured compute throughput and quantized spans are cached (default: $STRATA_CACHE_DIR or ~/.cache/strata) */
  cacheDir?: string
  /**
   * the direct data path: sessions move their steps from the libp2p stream to a plain TCP socket
   * sealed with AES-256-GCM (protocol/direct.ts), on this port of the listen address's host
   * (default true, port 0: any free port; with `announce`, only when `directPort` is given: an
   * unnamed port is not forwarded to the peer)
   */
  direct?: boolean
  directPort?: number
  /** tests and demos only: misbehave on purpose */
  fault?: Fault
  /** share of steps the `corrupt` and `slow` faults hit, evenly spaced (default 1: every step) */
  faultRate?: number
  /** serve Prometheus metrics at http://metricsHost:metricsPort/metrics (default: off; 0 = any free port) */
  metricsPort?: number
  /** address for the metrics endpoint (default 127.0.0.1) */
  metricsHost?: string
  logger?: Logger
}

/**
 * Whether each successive step is hit by a fault striking `rate` of them, evenly spaced (the
 * 1/rate-th, 2/rate-th… step): deterministic, so a test knows a low-rate liar lies.
 */
export function faultSchedule (rate: number): () => boolean {
  if (!(rate > 0 && rate <= 1)) throw new RangeError(`the fault rate must be in (0, 1], got ${rate}`)
  let steps = 0
  return () => {
    steps++
    return Math.floor(steps * rate) > Math.floor((steps - 1) * rate)
  }
}

export const peerDefaults = {
  maxSessions: 16,
  cacheBytes: 1024 ** 3,
  idleTimeoutMs: 60_000,
  protocolBanMs: 60_000,
  firstStepTimeoutMs: 5_000,
  activeWindowMs: 2_000,
  reserveChunkTokens: 128,
  drainTimeoutMs: 5_000,
  recordTtlMs: 60_000,
  reachableTimeoutMs: 30_000,
  /** delay added to every step by the `slow` fault, ms */
  slowFaultMs: 3_000,
  /** the `drop` fault closes a session's stream after this many steps */
  dropFaultSteps: 3
}
