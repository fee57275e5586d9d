// Announcing spans and discovering the peers that serve them.
//
// kad-dht keeps one value per key, so peers never write records into the DHT. Instead a peer
// serving blocks [start, end) of model M *provides* modelKey(M) and blockKey(M, b) for each b:
// DHT nodes only accept provider entries naming the sender itself, so no peer can add, replace
// or hide another's entry. Readers find the providers of a key, then ask each for its current
// signed record over the info protocol and verify it (signed by that very provider, unexpired,
// right model, span containing the block). Providers that are unreachable or lie are skipped.
import { performance } from 'node:perf_hooks'
import { withTimeout } from './abort.ts'
import { blockKey, modelKey } from './content-keys.ts'
import { DEFAULT_INFO_TIMEOUT_MS, fetchInfo } from './info.ts'
import { componentLogger, type Logger } from './logger.ts'
import { PROVIDER_TTL_MS, waitForRoutingTable, type SwarmNode } from './node.ts'
import { unresponsivePeers, UNRESPONSIVE_AFTER_MS } from './unresponsive.ts'
import { MAX_BLOCKS, verifyRecord, type PeerRecord, type VerifyRecordOptions } from './records.ts'
import type { PeerInfo } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

/** Blocks [start, end) of a model. */
export interface Span {
  start: number
  end: number
}

export interface AnnounceOptions {
  /** stops the announcement when aborted (so does stopping the node) */
  signal?: AbortSignal
  /** re-provide every this many ms (default PROVIDER_TTL_MS / 3) */
  refreshMs?: number
  /**
   * after a round that left some key unstored, retry this soon, ms (default 2 000); each further
   * incomplete round in a row doubles the wait, up to refreshMs, so that a swarm too busy to take
   * every announcement is not flooded with more
   */
  retryMs?: number
  /** bound on one round, including waiting for a first DHT peer, ms (default 15 000) */
  roundTimeoutMs?: number
  /** provide this many keys at once (default 8) */
  concurrency?: number
  /** called after each round */
  onRound?: (round: AnnounceRound) => void
  logger?: Logger
}

/** Outcome of one announce round. */
export interface AnnounceRound {
  /** keys provided: the model key plus one per block */
  keys: number
  /** keys that reached at least one other DHT node */
  stored: number
  durationMs: number
}

/** An invalid span or model id given to announceSpan / Announcement.update. */
export class AnnounceError extends Error {
  override name = 'AnnounceError'
}

/**
 * Provides the model key and every block key of `span`, then keeps them fresh until stopped.
 * Resolves after the first round (see `lastRound` for how it went).
 */
export async function announceSpan (node: SwarmNode, modelId: string, span: Span, opts: AnnounceOptions = {}): Promise<Announcement> {
  const announcement = new Announcement(node, modelId, span, opts)
  await announcement.announceNow()
  return announcement
}

export class Announcement {
  private readonly node: SwarmNode
  private readonly modelId: string
  private readonly log: Logger
  private readonly refreshMs: number
  private readonly retryMs: number
  private readonly roundTimeoutMs: number
  private readonly concurrency: number
  private readonly onRound?: (round: AnnounceRound) => void
  private readonly controller = new AbortController()
  private readonly callerSignal?: AbortSignal
  private span: Span
  private timer?: NodeJS.Timeout
  /** rounds run one after another */
  private queue: Promise<unknown> = Promise.resolve()
  private last?: AnnounceRound
  /** incomplete rounds in a row */
  private incomplete = 0

  constructor (node: SwarmNode, modelId: string, span: Span, opts: AnnounceOptions) {
    checkSpan(span)
    if (modelId.length === 0) {
      throw new AnnounceError('empty model id')
    }
    this.node = node
    this.modelId = modelId
    this.span = span
    this.log = componentLogger('routing:announce', opts.logger)
    this.refreshMs = opts.refreshMs ?? PROVIDER_TTL_MS / 3
    this.retryMs = opts.retryMs ?? 2_000
    this.roundTimeoutMs = opts.roundTimeoutMs ?? 15_000
    this.concurrency = opts.concurrency ?? 8
    this.onRound = opts.onRound
    this.onStop = this.onStop.bind(this)
    this.callerSignal = opts.signal
    this.callerSignal?.addEventListener('abort', this.onStop, { once: true })
    node.addEventListener('stop', this.onStop, { once: true })
  }

  /** The span currently announced. */
  get currentSpan (): Span {
    return { ...this.span }
  }

  /** How the most recent round went. */
  get lastRound (): AnnounceRound | undefined {
    return this.last
  }

  /** Switches to another span: stops re-providing blocks left, provides the new ones now. */
  async update (span: Span): Promise<AnnounceRound> {
    checkSpan(span)
    // after any running round, so that it cannot re-provide a key cancelled here
    const switched = this.queue.then(async () => {
      const kept = new Set(blockKeys(this.modelId, span).map(String))
      const left = this.blockKeys().filter((key) => !kept.has(key.toString()))
      this.span = { ...span }
      for (const key of left) {
        await this.node.services.dht.cancelReprovide(key)
      }
    })
    this.queue = switched.catch(() => {})
    await switched
    return await this.announceNow()
  }

  /** Runs a round now (after any running one) and reschedules the next. */
  async announceNow (): Promise<AnnounceRound> {
    this.controller.signal.throwIfAborted()
    clearTimeout(this.timer)
    const round = this.queue.then(async () => await this.round())
    this.queue = round.catch(() => {})
    const result = await round
    this.schedule(result)
    return result
  }

  /** Stops refreshing. DHT nodes drop the provider entries within PROVIDER_TTL_MS. */
  async stop (): Promise<void> {
    if (this.controller.signal.aborted) {
      return
    }
    this.controller.abort()
    clearTimeout(this.timer)
    this.node.removeEventListener('stop', this.onStop)
    this.callerSignal?.removeEventListener('abort', this.onStop)
    await this.queue
    if (this.node.status === 'started') {
      for (const key of this.allKeys()) {
        await this.node.services.dht.cancelReprovide(key)
      }
    }
  }

  private onStop (): void {
    this.stop().catch((err) => {
      this.log.debug({ err: (err as Error).message }, 'stopping announcement failed')
    })
  }

  private schedule (round: AnnounceRound): void {
    if (this.controller.signal.aborted) {
      return
    }
    clearTimeout(this.timer)
    this.incomplete = round.stored === round.keys ? 0 : this.incomplete + 1
    const wait = this.incomplete === 0 ? this.refreshMs : Math.min(this.refreshMs, this.retryMs * 2 ** Math.min(this.incomplete - 1, 30))
    this.timer = setTimeout(() => {
      this.announceNow().catch((err) => {
        if (!this.controller.signal.aborted) {
          this.log.warn({ err: (err as Error).message }, 'announce round failed')
        }
      })
    }, wait)
    this.timer.unref()
  }

  private async round (): Promise<AnnounceRound> {
    const started = performance.now()
    const keys = this.allKeys()
    let stored = 0
    try {
      stored = await withTimeout(this.roundTimeoutMs, this.controller.signal, async (signal) => {
        await waitForRoutingTable(this.node, 1, signal)
        const results = await mapLimit(keys, this.concurrency, async (key) => await this.provide(key, signal))
        return results.filter(Boolean).length
      })
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'announce round cut short')
    }
    this.last = { keys: keys.length, stored, durationMs: performance.now() - started }
    const level = stored === keys.length ? 'debug' : 'info'
    this.log[level]({ modelId: this.modelId, ...this.span, ...this.last }, 'announce round done')
    this.onRound?.(this.last)
    return this.last
  }

  /** Provides `key`; true if at least one other DHT node stored the entry. */
  private async provide (key: CID, signal: AbortSignal): Promise<boolean> {
    let stored = 0
    try {
      for await (const event of this.node.services.dht.provide(key, { signal })) {
        if (event.name === 'PEER_RESPONSE' && event.messageName === 'ADD_PROVIDER') {
          stored++
        }
      }
    } catch (err) {
      this.log.debug({ key: key.toString(), err: (err as Error).message }, 'provide failed')
    }
    return stored > 0
  }

  private allKeys (): CID[] {
    return [modelKey(this.modelId), ...this.blockKeys()]
  }

  private blockKeys (): CID[] {
    return blockKeys(this.modelId, this.span)
  }
}

function blockKeys (modelId: string, span: Span): CID[] {
  const keys: CID[] = []
  for (let b = span.start; b < span.end; b++) {
    keys.push(blockKey(modelId, b))
  }
  return keys
}

/** A verified peer record and the round-trip time of fetching it over an open connection. */
export interface DiscoveredPeer {
  record: PeerRecord
  latencyMs: number
}

export interface DiscoverOptions {
  signal?: AbortSignal
  /** bound on the whole discovery, ms (default 5 000); peers verified by then are returned */
  timeoutMs?: number
  /** bound on one provider's dial + info exchange, ms (default DEFAULT_INFO_TIMEOUT_MS) */
  infoTimeoutMs?: number
  /** the model's block count: records whose span exceeds it are dropped */
  numBlocks?: number
  /** the model's architecture: records of another one are dropped */
  arch?: string
  /** peer ids (strings) not to probe or return, e.g. peers already verified */
  skip?: ReadonlySet<string>
  logger?: Logger
}

/**
 * Peers serving any block of `modelId` (other than this node), with verified records, fastest
 * first. kad-dht returns at most 20 providers per key: in bigger swarms use findBlockPeers.
 */
export async function findModelPeers (node: SwarmNode, modelId: string, opts: DiscoverOptions = {}): Promise<DiscoveredPeer[]> {
  return await discover(node, modelKey(modelId), { modelId, numBlocks: opts.numBlocks, arch: opts.arch }, opts)
}

/** Peers serving block `block` of `modelId` (other than this node), verified, fastest first. */
export async function findBlockPeers (node: SwarmNode, modelId: string, block: number, opts: DiscoverOptions = {}): Promise<DiscoveredPeer[]> {
  return await discover(node, blockKey(modelId, block), { modelId, block, numBlocks: opts.numBlocks, arch: opts.arch }, opts)
}

async function discover (node: SwarmNode, key: CID, verify: VerifyRecordOptions, opts: DiscoverOptions): Promise<DiscoveredPeer[]> {
  const log = componentLogger('routing:discover', opts.logger)
  opts.signal?.throwIfAborted()
  const infoTimeoutMs = opts.infoTimeoutMs ?? DEFAULT_INFO_TIMEOUT_MS
  const unresponsive = unresponsivePeers(node)
  const recheckLog = log.child({ recheck: true })
  const peers = await withTimeout(opts.timeoutMs ?? 5_000, opts.signal, async (deadline) => {
    const seen = new Set<string>()
    const probes: Array<Promise<DiscoveredPeer | undefined>> = []
    try {
      await waitForRoutingTable(node, 1, deadline)
      for await (const event of node.services.dht.findProviders(key, { signal: deadline })) {
        if (event.name !== 'PROVIDER') {
          continue
        }
        for (const provider of event.providers) {
          const id = provider.id.toString()
          if (!provider.id.equals(node.peerId) && !seen.has(id) && opts.skip?.has(id) !== true) {
            seen.add(id)
            if (unresponsive.skips(id)) {
              unresponsive.recheck(id, async () => await withTimeout(infoTimeoutMs, undefined, async (signal) => await probe(node, provider, verify, signal, recheckLog)) !== undefined)
              continue
            }
            probes.push(withTimeout(infoTimeoutMs, deadline, async (signal) => {
              const started = performance.now()
              const found = await probe(node, provider, verify, signal, log)
              // unanswered for long, and not because the caller gave up: skipped for a while
              if (found === undefined && performance.now() - started >= UNRESPONSIVE_AFTER_MS && opts.signal?.aborted !== true) {
                log.debug({ peer: id }, 'provider unresponsive: skipped by discovery for a while')
                unresponsive.mark(id)
              }
              return found
            }))
          }
        }
      }
    } catch (err) {
      if (!deadline.aborted) {
        throw err
      }
      log.debug({ key: key.toString(), providers: seen.size }, 'provider search hit the deadline')
    }
    return (await Promise.all(probes)).filter((p): p is DiscoveredPeer => p != null)
  })
  opts.signal?.throwIfAborted()
  return peers.sort((a, b) => a.latencyMs - b.latencyMs)
}

/** Connects to a provider, fetches and verifies its record; undefined if anything fails. */
async function probe (node: SwarmNode, provider: PeerInfo, verify: VerifyRecordOptions, signal: AbortSignal, log: Logger): Promise<DiscoveredPeer | undefined> {
  const peerId = provider.id.toString()
  try {
    if (provider.multiaddrs.length > 0) {
      await node.peerStore.merge(provider.id, { multiaddrs: provider.multiaddrs }, { signal })
    }
    await node.dial(provider.id, { signal })
    const started = performance.now()
    const bytes = await fetchInfo(node, provider.id, { signal })
    const latencyMs = performance.now() - started
    return { record: verifyRecord(bytes, { ...verify, expectedPeerId: peerId }), latencyMs }
  } catch (err) {
    log.debug({ peer: peerId, err: (err as Error).message, errName: (err as Error).name }, 'skipping provider')
    return undefined
  }
}

/** Runs `fn` over `items` with at most `limit` in flight; results in input order. */
async function mapLimit<T, R> (items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i])
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

function checkSpan (span: Span): void {
  if (!Number.isSafeInteger(span.start) || !Number.isSafeInteger(span.end) ||
      span.start < 0 || span.start >= span.end || span.end > MAX_BLOCKS) {
    throw new AnnounceError(`invalid span [${span.start}, ${span.end})`)
  }
}
