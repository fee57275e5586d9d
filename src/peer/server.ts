// The peer daemon: loads its span, serves inference sessions over libp2p, and announces itself
// in the DHT with signed records until it drains and leaves. A peer that chose its own blocks
// (no --blocks) also rebalances: it moves to other blocks when the swarm needs it there.
import { EventEmitter } from 'node:events'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { WorkerSpanEngine } from '../shards/worker/engine-client.ts'
import { loadModelConfig, modelIdFor, type ModelConfig } from '../shards/config.ts'
import { multiaddr } from '@multiformats/multiaddr'
import { DIRECT_PROTOCOL, INFERENCE_PROTOCOL, PUSH_PROTOCOL } from '../protocol/messages.ts'
import { createSwarmNode, defaultListen, reachabilityOf, tcpHostOf, waitForAnnounceableAddress, withTimeout, loadOrCreateIdentity, signRecord, serveInfo, announceSpan, Announcement, type SwarmNode, type PeerRecord, type PeerState } from '../routing/index.ts'
import { componentLogger, type Logger } from '../routing/logger.ts'
import type { BlockRange } from '../loadbalance/index.ts'
import type { Server } from 'node:http'
import { Admission, defaultShares, type Holder } from './admission.ts'
import { PeerMetrics } from './metrics.ts'
import { RequestLimiter, defaultRequestLimits } from './rate-limit.ts'
import { Offenders } from './offenders.ts'
import { handleSession, holderOf, frameLimitsFor, type LiveSession } from './session-handler.ts'
import { PushRegistry, handlePushStream } from './push.ts'
import { DirectListener, handleDirectRequest } from './direct.ts'
import { peerThroughput, type PeerThroughput } from './announced-throughput.ts'
import { defaultCacheDir } from '../shards/cache-dir.ts'
import { chooseSpan } from './placement.ts'
import { swarmRecords } from './swarm-view.ts'
import { Rebalancer, rebalanceDefaults } from './rebalance.ts'
import { faultSchedule, peerDefaults, type PeerConfig } from './config.ts'

export const SOFTWARE_VERSION = '0.1.0'

/** an offender's connections are dropped this long after its error reply was sent, ms */
const HANG_UP_GRACE_MS = 500

/** A peer behind NAT found no relay to be reached through. */
export class UnreachableError extends Error {
  override name = 'UnreachableError'
}

export interface PeerEvent { event: string, [k: string]: unknown }

export class PeerServer extends EventEmitter<{ event: [PeerEvent] }> {
  private state: PeerState = 'joining'
  private seq = 0
  private announcement: Announcement | null = null
  private rebalancer: Rebalancer | null = null
  private readonly sessions = new Map<string, LiveSession>()
  private cachedRecord: { bytes: Uint8Array, at: number } | null = null
  private stopping: Promise<void> | null = null
  /** Prometheus metrics, when --metrics-port is given */
  private metrics: PeerMetrics | null = null
  private metricsServer: Server | null = null
  /** the bound metrics port, when metrics are served */
  metricsPort: number | null = null
  /** the direct data path's listener (null with direct: false) */
  private direct: DirectListener | null = null
  /** the span announced: while moving, the new one before its engine is loaded */
  private current: BlockRange

  private constructor (
    readonly node: SwarmNode,
    private readonly privateKey: PrivateKey,
    /** replaced when the peer moves */
    private engine: WorkerSpanEngine,
    private readonly model: ModelConfig,
    readonly modelId: string,
    private readonly admission: Admission,
    private readonly offenders: Offenders,
    readonly measured: PeerThroughput,
    private readonly cfg: PeerConfig,
    private readonly log: Logger
  ) {
    super()
    this.current = { start: engine.start, end: engine.end }
  }

  /** Starts a peer: node up, span chosen and loaded, throughput measured, sessions served, announced. */
  static async start (cfg: PeerConfig): Promise<PeerServer> {
    const log = componentLogger('peer', cfg.logger)
    const configOptions = { allowUnknownKeys: cfg.allowUnknownConfig }
    const model = loadModelConfig(cfg.modelDir, configOptions)
    const modelId = cfg.modelId ?? modelIdFor(cfg.modelDir, configOptions)
    const privateKey = cfg.identityFile !== undefined ? await loadOrCreateIdentity(cfg.identityFile) : await generateKeyPair('Ed25519')
    const offenders = new Offenders(cfg.protocolBanMs ?? peerDefaults.protocolBanMs)
    const nodeOpts = { listen: cfg.listen, bootstrap: cfg.bootstrap, privateKey, relay: cfg.relay, announcePrivate: cfg.announcePrivate, announce: cfg.announce, connectionGater: offenders.gater(), logger: cfg.logger }
    const reach = reachabilityOf(nodeOpts)
    const node = await createSwarmNode(nodeOpts)
    let engine: WorkerSpanEngine | null = null
    try {
      const [start, end] = cfg.blocks ?? await chooseSpan(model, cfg, async () => await swarmRecords(node, modelId, model.numLayers, model.family, log))
      if (start < 0 || end > model.numLayers || start >= end) throw new RangeError(`--blocks ${start}:${end} is outside the model's ${model.numLayers} blocks`)
      if (cfg.fault !== undefined) log.warn({ fault: cfg.fault }, `FAULT INJECTION ENABLED (${cfg.fault}): this peer misbehaves on purpose`)
      engine = await WorkerSpanEngine.load(cfg.modelDir, { start, end, weightFormat: cfg.weightFormat, threads: cfg.threads, allowUnknownConfig: cfg.allowUnknownConfig, spanCacheDir: cfg.cacheDir ?? defaultCacheDir() })
      if (engine.info.cacheOutcome !== null) log.info({ blocks: [start, end], outcome: engine.info.cacheOutcome }, 'quantized span cache')
      const measured = await peerThroughput(engine, node, {
        modelId, threads: cfg.threads, cacheDir: cfg.cacheDir ?? defaultCacheDir(), networkMbps: cfg.networkMbps, bootstrap: cfg.bootstrap ?? []
      }, log)
      if (reach.scope === 'public') {
        // the records must carry an address clients can dial: the relay slot's behind NAT, else
        // a public address AutoNAT confirmed (another node dialled it back)
        const timeoutMs = cfg.reachableTimeoutMs ?? peerDefaults.reachableTimeoutMs
        await withTimeout(timeoutMs, undefined, async (signal) => { await waitForAnnounceableAddress(node, signal) }).catch(() => {
          throw new UnreachableError(reach.behindNat
            ? `behind NAT and no relay slot after ${timeoutMs} ms: is a bootstrap peer relaying (--relay)?`
            : `no public address confirmed by AutoNAT after ${timeoutMs} ms: is the listen port reachable from the internet (firewall, --announce for a forwarded port)?`)
        })
      }
      log.info({ ...reach, multiaddrs: node.getMultiaddrs().map(String) }, 'reachability')
      const server = new PeerServer(node, privateKey, engine, model, modelId, admissionFor(cfg), offenders, measured, cfg, log)
      await server.serve()
      return server
    } catch (err) {
      await engine?.dispose()
      await node.stop()
      throw err
    }
  }

  get span (): [number, number] { return [this.current.start, this.current.end] }
  get peerId (): string { return this.node.peerId.toString() }
  get multiaddrs (): string[] { return this.node.getMultiaddrs().map(String) }
  get openSessions (): number { return this.sessions.size }
  /** TCP port of the direct data path (null: off) */
  get directPort (): number | null { return this.direct?.port ?? null }
  /** tokens/s announced: min(compute, network) */
  get throughput (): number { return this.measured.announced }

  /** The current record, freshly signed (cached for a second). */
  signedRecord (): Uint8Array {
    const now = Date.now()
    if (this.cachedRecord !== null && now - this.cachedRecord.at < 1000) return this.cachedRecord.bytes
    const bytes = signRecord(this.record(now), this.privateKey)
    this.cachedRecord = { bytes, at: now }
    return bytes
  }

  record (now = Date.now()): PeerRecord {
    return {
      peerId: this.peerId,
      modelId: this.modelId,
      arch: this.model.family,
      multiaddrs: this.multiaddrs.slice(0, 16),
      start: this.current.start,
      end: this.current.end,
      state: this.state,
      throughput: this.throughput,
      cacheTokensLeft: Math.floor(this.admission.freeBytes / this.engine.info.kvBytesPerToken),
      sessions: this.sessions.size,
      maxSessions: this.admission.limits.maxSessions,
      dtype: this.engine.info.weightFormat,
      version: SOFTWARE_VERSION,
      expiresAt: now + (this.cfg.recordTtlMs ?? peerDefaults.recordTtlMs),
      seq: ++this.seq
    }
  }

  private async serve (): Promise<void> {
    if (this.cfg.metricsPort !== undefined) {
      this.metrics = new PeerMetrics({
        openSessions: () => this.sessions.size,
        kvUsedBytes: () => this.admission.usedBytes,
        kvCapacityBytes: () => this.admission.capacityBytes
      }, () => ({ peerId: this.peerId, modelId: this.modelId, start: this.current.start, end: this.current.end, version: SOFTWARE_VERSION }))
      const bound = await this.metrics.listen(this.cfg.metricsPort, this.cfg.metricsHost ?? '127.0.0.1', () => ({
        serving: this.state === 'online', state: this.state, peerId: this.peerId, blocks: this.span, openSessions: this.sessions.size
      }))
      this.metricsServer = bound.server
      this.metricsPort = bound.port
      const metrics = this.metrics
      this.engine.onBatch = (size) => { metrics.batch(size) }
    }
    // behind --announce (a forwarded port, a proxy) only a port the operator names is reachable
    const directOn = this.cfg.direct !== false && ((this.cfg.announce ?? []).length === 0 || this.cfg.directPort !== undefined)
    if (directOn) this.direct = await DirectListener.start(directHost(this.cfg.listen ?? defaultListen(this.cfg.bootstrap ?? [])), this.cfg.directPort ?? 0, this.log)
    const ctx = {
      direct: this.direct ?? undefined,
      engine: () => this.engine,
      model: this.model,
      modelId: this.modelId,
      admission: this.admission,
      idleTimeoutMs: this.cfg.idleTimeoutMs ?? peerDefaults.idleTimeoutMs,
      firstStepTimeoutMs: this.cfg.firstStepTimeoutMs ?? peerDefaults.firstStepTimeoutMs,
      reserveChunkTokens: this.cfg.reserveChunkTokens ?? peerDefaults.reserveChunkTokens,
      fault: this.cfg.fault,
      faultDue: faultSchedule(this.cfg.faultRate ?? 1),
      log: this.log,
      sessions: this.sessions,
      isServing: () => this.state === 'online',
      emit: (e: Record<string, unknown>) => { this.emitEvent(e) },
      limiter: requestLimiterFor(this.cfg, this.admission),
      offended: (holder: Holder) => { this.shutOut(holder) },
      shutOut: (holder: Holder) => this.offenders.isPeerBanned(holder.peer, Date.now()) || this.offenders.isIpBanned(holder.ip, Date.now()),
      observer: this.metrics ?? undefined,
      pushes: new PushRegistry(),
      dialPush: async (peerId: string, multiaddrs: string[], signal: AbortSignal) => await this.dialPush(peerId, multiaddrs, signal),
      selfId: this.peerId
    }
    await this.node.handle(INFERENCE_PROTOCOL, async (stream, connection) => {
      this.cachedRecord = null
      await handleSession(stream, connection, ctx)
      this.cachedRecord = null
      // libp2p's own per-connection cap is only a backstop: the limiter counts streams per peer
      // id over all its connections, and the metrics see what it refuses
    }, { maxInboundStreams: ctx.limiter.limits.streamsPerPeer + 8, runOnLimitedConnection: true })
    await this.node.handle(PUSH_PROTOCOL, async (stream, connection) => {
      await handlePushStream(stream, holderOf(connection), { ...ctx, registry: ctx.pushes, frameLimits: frameLimitsFor(this.model) })
    }, { maxInboundStreams: ctx.limiter.limits.streamsPerPeer + 8, runOnLimitedConnection: true })
    if (this.direct !== null) {
      await this.node.handle(DIRECT_PROTOCOL, async (stream, connection) => {
        // only over a direct connection: the socket goes to the host this connection comes from
        if (connection.limits !== undefined || ctx.shutOut(holderOf(connection))) { stream.abort(new Error('no direct path here')); return }
        await handleDirectRequest(stream, connection.remotePeer.toString(), this.sessions, ctx.firstStepTimeoutMs)
      }, { maxInboundStreams: 4 })
    }
    await serveInfo(this.node, () => this.signedRecord(), { logger: this.cfg.logger })
    this.state = 'online'
    const announceOpts = { logger: this.cfg.logger, refreshMs: Math.min((this.cfg.recordTtlMs ?? peerDefaults.recordTtlMs) / 3, 200_000) }
    if ((this.cfg.bootstrap ?? []).length > 0) {
      // joining a swarm: ready only once the records are out
      this.announcement = await announceSpan(this.node, this.modelId, this.current, announceOpts)
    } else {
      // the first peer of a swarm has nobody to announce to yet; rounds retry as peers arrive
      this.announcement = new Announcement(this.node, this.modelId, this.current, announceOpts)
      this.announcement.announceNow().catch((err: Error) => { this.log.debug({ err: err.message }, 'first announce round failed') })
    }
    if (this.cfg.blocks === undefined) this.startRebalancing()
    this.watchAddresses()
    this.log.info({ modelId: this.modelId, span: this.span, layers: this.model.numLayers, throughput: this.throughput }, 'serving')
  }

  /** A push stream to the next hop of a session (its client gave the peer id and addresses). */
  private async dialPush (peerId: string, multiaddrs: string[], signal: AbortSignal): Promise<Stream> {
    const id = peerIdFromString(peerId)
    if (multiaddrs.length > 0) await this.node.peerStore.merge(id, { multiaddrs: multiaddrs.map((a) => multiaddr(a)) })
    return await this.node.dialProtocol(id, PUSH_PROTOCOL, { signal, runOnLimitedConnection: true })
  }

  /**
   * Reports and re-announces the addresses others can dial whenever they change: a relay slot
   * lost (the relay restarted) and reserved again, an address AutoNAT confirmed or withdrew.
   */
  private watchAddresses (): void {
    let announced = this.multiaddrs.join(' ')
    this.node.addEventListener('self:peer:update', () => {
      const now = this.multiaddrs
      if (now.join(' ') === announced || this.stopping !== null) return
      announced = now.join(' ')
      this.cachedRecord = null
      this.log.info({ multiaddrs: now }, 'announced addresses changed')
      this.emitEvent({ event: 'addresses', multiaddrs: now })
      if (now.length > 0) this.announcement?.announceNow().catch((err: Error) => { this.log.debug({ err: err.message }, 'announce round after an address change failed') })
    })
  }

  /**
   * Bans a remote that broke the wire protocol (its new streams are reset at once) and drops its
   * connections a moment later, once the error it was sent has gone out.
   */
  private shutOut (holder: Holder): void {
    if (this.offenders.banMs <= 0) return
    this.offenders.ban(holder, Date.now())
    this.log.warn({ peer: holder.peer, ip: holder.ip, banMs: this.offenders.banMs }, 'remote broke the wire protocol: disconnected and shut out')
    setTimeout(() => {
      this.node.hangUp(peerIdFromString(holder.peer)).catch((err: Error) => { this.log.debug({ err: err.message }, 'hang up failed') })
    }, HANG_UP_GRACE_MS).unref()
  }

  private startRebalancing (): void {
    this.rebalancer = new Rebalancer({
      self: () => ({ peerId: this.peerId, ...this.current, throughput: this.throughput, state: this.state }),
      numBlocks: this.model.numLayers,
      records: async (signal) => await swarmRecords(this.node, this.modelId, this.model.numLayers, this.model.family, this.log, signal),
      move: async (to, reason, signal) => { await this.moveTo(to, reason, signal) },
      log: this.log
    }, { ...rebalanceDefaults, intervalMs: this.cfg.rebalanceIntervalMs ?? rebalanceDefaults.intervalMs })
    this.rebalancer.start()
  }

  /**
   * Moves to other blocks of the same length: drain (new sessions refused, open ones handed back),
   * announce the new span as joining (so peers choosing meanwhile count it), load it, swap, back
   * online. The old span stays loaded until the new one is, so a failed load just goes back to it
   * (at the cost of holding both spans' weights for the length of the load). Shutting down cuts
   * the move short after the drain.
   */
  private async moveTo (to: BlockRange, reason: string, signal: AbortSignal): Promise<void> {
    const from = this.current
    this.setState('draining')
    await this.drainSessions(signal)
    if (signal.aborted) return
    await this.announce(to, 'joining')
    let engine: WorkerSpanEngine
    try {
      engine = await WorkerSpanEngine.load(this.cfg.modelDir, { ...to, weightFormat: this.cfg.weightFormat, threads: this.cfg.threads, allowUnknownConfig: this.cfg.allowUnknownConfig, spanCacheDir: this.cfg.cacheDir ?? defaultCacheDir() })
      if (engine.info.cacheOutcome !== null) this.log.info({ blocks: [to.start, to.end], outcome: engine.info.cacheOutcome }, 'quantized span cache')
    } catch (err) {
      this.log.error({ err: (err as Error).message, from, to }, 'could not load the new blocks; staying on the old ones')
      await this.announce(from, 'online')
      throw err
    }
    const old = this.engine
    engine.onBatch = old.onBatch
    this.engine = engine
    this.setState('online')
    await old.dispose()
    this.emitEvent({ event: 'rebalanced', from: [from.start, from.end], to: [to.start, to.end], reason })
  }

  private async announce (span: BlockRange, state: PeerState): Promise<void> {
    this.current = span
    this.setState(state)
    await this.announcement?.update(span)
  }

  private setState (state: PeerState): void {
    this.state = state
    this.cachedRecord = null
  }

  /** Hands every open session back and waits (bounded by the drain timeout) for them to end. */
  private async drainSessions (signal?: AbortSignal): Promise<void> {
    for (const s of this.sessions.values()) s.handBack()
    const deadline = AbortSignal.any([AbortSignal.timeout(this.cfg.drainTimeoutMs ?? peerDefaults.drainTimeoutMs), ...(signal !== undefined ? [signal] : [])])
    const all = Promise.all([...this.sessions.values()].map(async (s) => await s.done))
    await Promise.race([all, new Promise((resolve) => deadline.addEventListener('abort', resolve, { once: true }))])
  }

  private emitEvent (e: Record<string, unknown>): void {
    this.emit('event', e as PeerEvent)
  }

  /**
   * Graceful shutdown: mark draining (clients move away: open sessions get a `draining` reply
   * on their next step), wait for sessions to end (bounded), leave the swarm, free the span.
   * A move in progress is cut short first.
   */
  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      await this.rebalancer?.stop()
      this.setState('draining')
      this.emitEvent({ event: 'draining', sessions: this.sessions.size })
      await this.drainSessions()
      await this.announcement?.stop()
      await this.node.stop()
      await this.direct?.close()
      await this.engine.dispose()
      await new Promise((resolve) => this.metricsServer === null ? resolve(null) : this.metricsServer.close(resolve))
      this.emitEvent({ event: 'stopped' })
    })()
    await this.stopping
  }
}

/** Slots, KV budget and fair shares from the config (shares default to a fraction of the whole). */
function admissionFor (cfg: PeerConfig): Admission {
  const maxSessions = cfg.maxSessions ?? peerDefaults.maxSessions
  const capacityBytes = cfg.cacheBytes ?? peerDefaults.cacheBytes
  const shares = defaultShares(maxSessions, capacityBytes)
  return new Admission({
    maxSessions,
    capacityBytes,
    perPeerSessions: cfg.maxSessionsPerPeer ?? shares.perPeerSessions,
    perIpSessions: cfg.maxSessionsPerIp ?? shares.perIpSessions,
    perPeerBytes: cfg.cacheBytesPerPeer ?? shares.perPeerBytes,
    perIpBytes: cfg.cacheBytesPerIp ?? shares.perIpBytes,
    activeWindowMs: cfg.activeWindowMs ?? peerDefaults.activeWindowMs
  })
}

/** Per-remote-peer stream and rate limits from the config (defaults: see defaultRequestLimits). */
function requestLimiterFor (cfg: PeerConfig, admission: Admission): RequestLimiter {
  const d = defaultRequestLimits(admission.limits.perPeerSessions)
  return new RequestLimiter({
    streamsPerPeer: cfg.maxStreamsPerPeer ?? d.streamsPerPeer,
    opensPerPeerPerSecond: cfg.maxOpensPerPeerPerSecond ?? d.opensPerPeerPerSecond,
    messagesPerPeerPerSecond: cfg.maxMessagesPerPeerPerSecond ?? d.messagesPerPeerPerSecond
  })
}

/**
 * The host the direct listener binds: that of the first IP listen address, so it is reachable
 * where the libp2p listener is.
 */
function directHost (listen: string[]): string {
  for (const addr of listen) {
    const host = tcpHostOf(multiaddr(addr))
    if (host !== null) return host
  }
  return '0.0.0.0'
}
