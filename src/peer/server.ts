// The peer daemon: loads its span, serves inference sessions over libp2p, and announces itself
// in the DHT with signed records until it drains and leaves.
import { EventEmitter } from 'node:events'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { WorkerSpanEngine } from '../shards/worker/engine-client.ts'
import { loadModelConfig, modelIdFor, type ModelConfig } from '../shards/config.ts'
import { INFERENCE_PROTOCOL } from '../protocol/messages.ts'
import { createSwarmNode, loadOrCreateIdentity, signRecord, serveInfo, announceSpan, Announcement, findModelPeers, type SwarmNode, type PeerRecord, type PeerState } from '../routing/index.ts'
import { componentLogger, type Logger } from '../routing/logger.ts'
import { CacheBudget } from './cache-budget.ts'
import { handleSession, type LiveSession } from './session-handler.ts'
import { measureComputeThroughput } from './throughput.ts'
import { chooseSpan } from './placement.ts'
import { peerDefaults, type PeerConfig } from './config.ts'

export const SOFTWARE_VERSION = '0.1.0'

export interface PeerEvent { event: string, [k: string]: unknown }

export class PeerServer extends EventEmitter<{ event: [PeerEvent] }> {
  private state: PeerState = 'joining'
  private seq = 0
  private announcement: Announcement | null = null
  private readonly sessions = new Map<string, LiveSession>()
  private cachedRecord: { bytes: Uint8Array, at: number } | null = null
  private stopping: Promise<void> | null = null

  private constructor (
    readonly node: SwarmNode,
    private readonly privateKey: PrivateKey,
    readonly engine: WorkerSpanEngine,
    readonly modelId: string,
    private readonly budget: CacheBudget,
    readonly throughput: number,
    private readonly cfg: PeerConfig,
    private readonly log: Logger
  ) { super() }

  /** Starts a peer: node up, span chosen and loaded, throughput measured, sessions served, announced. */
  static async start (cfg: PeerConfig): Promise<PeerServer> {
    const log = componentLogger('peer', cfg.logger)
    const model = loadModelConfig(cfg.modelDir)
    const modelId = cfg.modelId ?? modelIdFor(cfg.modelDir)
    const privateKey = cfg.identityFile !== undefined ? await loadOrCreateIdentity(cfg.identityFile) : await generateKeyPair('Ed25519')
    const node = await createSwarmNode({ listen: cfg.listen, bootstrap: cfg.bootstrap, privateKey, logger: cfg.logger })
    let engine: WorkerSpanEngine | null = null
    try {
      const [start, end] = cfg.blocks ?? await chooseSpan(model, cfg, async () => (await findModelPeers(node, modelId, { numBlocks: model.numLayers })).map((p) => p.record))
      if (start < 0 || end > model.numLayers || start >= end) throw new RangeError(`--blocks ${start}:${end} is outside the model's ${model.numLayers} blocks`)
      if (cfg.fault !== undefined) log.warn({ fault: cfg.fault }, `FAULT INJECTION ENABLED (${cfg.fault}): this peer misbehaves on purpose`)
      engine = await WorkerSpanEngine.load(cfg.modelDir, { start, end, weightFormat: cfg.weightFormat, threads: cfg.threads })
      const throughput = await measureComputeThroughput(engine)
      const server = new PeerServer(node, privateKey, engine, modelId, new CacheBudget(cfg.cacheBytes ?? peerDefaults.cacheBytes), throughput, cfg, log)
      await server.serve(model)
      return server
    } catch (err) {
      await engine?.dispose()
      await node.stop()
      throw err
    }
  }

  get span (): [number, number] { return [this.engine.start, this.engine.end] }
  get peerId (): string { return this.node.peerId.toString() }
  get multiaddrs (): string[] { return this.node.getMultiaddrs().map(String) }
  get openSessions (): number { return this.sessions.size }

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
      multiaddrs: this.multiaddrs.slice(0, 16),
      start: this.engine.start,
      end: this.engine.end,
      state: this.state,
      throughput: this.throughput,
      cacheTokensLeft: Math.floor(this.budget.freeBytes / this.engine.info.kvBytesPerToken),
      dtype: this.engine.info.weightFormat,
      version: SOFTWARE_VERSION,
      expiresAt: now + (this.cfg.recordTtlMs ?? peerDefaults.recordTtlMs),
      seq: ++this.seq
    }
  }

  private async serve (model: ModelConfig): Promise<void> {
    const ctx = {
      engine: this.engine,
      modelId: this.modelId,
      budget: this.budget,
      maxSessions: this.cfg.maxSessions ?? peerDefaults.maxSessions,
      idleTimeoutMs: this.cfg.idleTimeoutMs ?? peerDefaults.idleTimeoutMs,
      fault: this.cfg.fault,
      log: this.log,
      sessions: this.sessions,
      isDraining: () => this.state === 'draining',
      emit: (e: Record<string, unknown>) => { this.emitEvent(e) }
    }
    await this.node.handle(INFERENCE_PROTOCOL, async (stream, connection) => {
      this.cachedRecord = null
      await handleSession(stream, connection, ctx)
      this.cachedRecord = null
    }, { maxInboundStreams: ctx.maxSessions + 8 })
    await serveInfo(this.node, () => this.signedRecord(), { logger: this.cfg.logger })
    this.state = 'online'
    const span = { start: this.engine.start, end: this.engine.end }
    const announceOpts = { logger: this.cfg.logger, refreshMs: Math.min((this.cfg.recordTtlMs ?? peerDefaults.recordTtlMs) / 3, 200_000) }
    if ((this.cfg.bootstrap ?? []).length > 0) {
      // joining a swarm: ready only once the records are out
      this.announcement = await announceSpan(this.node, this.modelId, span, announceOpts)
    } else {
      // the first peer of a swarm has nobody to announce to yet; rounds retry as peers arrive
      this.announcement = new Announcement(this.node, this.modelId, span, announceOpts)
      this.announcement.announceNow().catch((err: Error) => { this.log.debug({ err: err.message }, 'first announce round failed') })
    }
    this.log.info({ modelId: this.modelId, span: this.span, layers: model.numLayers, throughput: this.throughput }, 'serving')
  }

  private emitEvent (e: Record<string, unknown>): void {
    this.emit('event', e as PeerEvent)
  }

  /**
   * Graceful shutdown: mark draining (clients move away: open sessions get a `draining` reply
   * on their next step), wait for sessions to end (bounded), leave the swarm, free the span.
   */
  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      this.state = 'draining'
      this.cachedRecord = null
      this.emitEvent({ event: 'draining', sessions: this.sessions.size })
      for (const s of this.sessions.values()) s.handBack()
      const deadline = AbortSignal.timeout(this.cfg.drainTimeoutMs ?? peerDefaults.drainTimeoutMs)
      const all = Promise.all([...this.sessions.values()].map(async (s) => await s.done))
      await Promise.race([all, new Promise((resolve) => deadline.addEventListener('abort', resolve, { once: true }))])
      await this.announcement?.stop()
      await this.node.stop()
      await this.engine.dispose()
      this.emitEvent({ event: 'stopped' })
    })()
    await this.stopping
  }
}
