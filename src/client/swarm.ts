// The SDK facade: connect to a swarm, generate through it.
//
//   const swarm = await Swarm.connect({ bootstrap: ['/ip4/…/p2p/…'], modelDir: './model' })
//   for await (const e of swarm.generate({ text: 'Hello' }, { maxNewTokens: 20 })) …
//   swarm.generate({ messages: [{ role: 'system', content: '…' }, { role: 'user', content: '…' }] }) — through the chat template
//   await swarm.close()
//
// The client holds only embeddings, final norm, LM head and tokenizer; the blocks run on peers.
// With `verify`, it also recomputes every hop locally (it then needs the block weights too) and
// routes around peers whose outputs differ. With `auditRate`, it needs no weights: a sampled
// share of hop steps is cross-checked against replicas (routing/replica-auditor.ts), and peers
// caught lying are excluded for the life of the Swarm.
import { loadModelConfig, modelIdFor, type ModelConfig } from '../shards/config.ts'
import { TextTokenizer } from '../shards/tokenizer.ts'
import { defaultCacheDir } from '../shards/cache-dir.ts'
import { TokenVocabulary } from '../shards/vocabulary.ts'
import { WorkerHeadEngine } from '../shards/worker/engine-client.ts'
import type { WeightFormat } from '../shards/span-graph.ts'
import type { WireDtype } from '../protocol/tensor.ts'
import {
  createSwarmNode, waitForRoutingTable, withTimeout, componentLogger, ChainSession, DhtCandidates, ReplicaAuditor, PushOptionsError,
  type SwarmNode, type RerouteEvent, type Logger, type AuditEvent
} from '../routing/index.ts'
import { runGeneration, promptIds, type GenerationEvent, type Prompt } from './session.ts'
import type { GenerateOptions, RouteHop } from './generation.ts'
import { peerIdFromString } from '@libp2p/peer-id'
import { LocalVerifier } from './verifier.ts'
import { DraftModel, withDrafter, type DraftModelOptions } from './draft-model.ts'
import { scoreTokens, type ScoreOptions, type ScoreResult } from './scoring.ts'

export interface SwarmOptions {
  /** bootstrap peer multiaddrs (with /p2p/<id>, or without: whoever answers there) */
  bootstrap: string[]
  /** model directory: config.json, tokenizer, embeddings and LM head (block weights are not read) */
  modelDir: string
  /** default: derived from config.json, as peers do */
  modelId?: string
  /** hidden states on the wire: f32 (exact, default) or f16 (half the bytes) */
  wireDtype?: WireDtype
  /** per-hop step deadline, ms (default 5 000) */
  stepTimeoutMs?: number
  /**
   * when blocks are left without any peer (e.g. all their peers crashed), how long to wait for
   * peers to move in or join before failing, ms (default 3 000)
   */
  coverageWaitMs?: number
  /** how long to wait for the first DHT peer, ms (default 10 000) */
  connectTimeoutMs?: number
  /**
   * check every peer's output against local recomputation (needs the block weights in
   * `modelDir` and the f32 wire); peers that differ are routed around (default false)
   */
  verify?: boolean
  /**
   * share of hop steps cross-checked against a replica serving the same blocks, in [0, 1]
   * (default 0: off); needs no block weights. Not with `verify` (which checks every step).
   */
  auditRate?: number
  /**
   * who settles a disagreement between a peer and its replica: 'auto' (default) = the block
   * weights in `modelDir` when present, else third peers; 'replicas' = third peers only
   */
  auditReferee?: 'auto' | 'replicas'
  /**
   * server-to-server push: each peer sends its output straight to the next peer of the chain and
   * only the last one answers, one network traversal per hop instead of two (default false).
   * Not with `verify` or `auditRate` (they check the intermediate outputs push keeps off the client).
   */
  push?: boolean
  /**
   * run each hop's steps over the peer's direct data path, a plain TCP socket sealed with
   * AES-256-GCM whose key travels over the libp2p connection, when the peer offers one (default
   * true; never with push, never over relayed connections). Sessions open on libp2p either way.
   */
  direct?: boolean
  /** upgrade relayed connections to peers behind NAT to direct ones with DCUtR (default true) */
  holePunch?: boolean
  /** the client's embeddings and LM head: f32 (default, exact) or stored as f16/int8/int4 — less read per token, not bit-identical */
  headFormat?: WeightFormat
  threads?: number
  /** accept config.json keys strata does not know (the CLI's --allow-unknown-config; callers warn) */
  allowUnknownConfig?: boolean
  /** a local model that drafts for speculative decoding (used when generating with `speculate`) */
  draftModel?: DraftModelOptions
  /** speculative decoding for generations that do not set `speculate` themselves (default 0: off) */
  speculate?: number
  logger?: Logger
  signal?: AbortSignal
}

export interface SwarmGenerateOptions extends GenerateOptions {
  /** called on every re-route */
  onReroute?: (e: RerouteEvent) => void
  /** override the swarm's `verify` for this generation */
  verify?: boolean
  /** called on every sampled audit (with `auditRate`) */
  onAudit?: (e: AuditEvent) => void
}

/** `verify` recomputes every step; an audit rate on top of it would only add work. */
export class AuditOptionsError extends Error {
  override name = 'AuditOptionsError'
}

/** Verification of outputs needs them bit-exact: a lossy wire could never match. */
export class VerifyWireError extends Error {
  override name = 'VerifyWireError'
  constructor () { super('verifying peers compares outputs bit for bit and needs the f32 wire, not f16') }
}

export class Swarm {
  private verifier: LocalVerifier | null = null
  /** peers caught lying by audits: excluded from every later chain */
  private readonly liars = new Set<string>()

  private constructor (
    readonly node: SwarmNode,
    readonly modelId: string,
    readonly config: ModelConfig,
    private readonly head: WorkerHeadEngine,
    readonly tokenizer: TextTokenizer | null,
    /** token bytes: logprobs' token strings and JSON-constrained decoding */
    readonly vocabulary: TokenVocabulary | null,
    private readonly candidates: DhtCandidates,
    private readonly opts: SwarmOptions,
    private readonly log: Logger,
    private readonly draft: DraftModel | null
  ) {}

  static async connect (opts: SwarmOptions): Promise<Swarm> {
    if (opts.bootstrap.length === 0) throw new Error('Swarm.connect needs at least one bootstrap multiaddr')
    if (opts.verify === true && opts.wireDtype === 'f16') throw new VerifyWireError()
    const auditRate = opts.auditRate ?? 0
    if (!(auditRate >= 0 && auditRate <= 1)) throw new AuditOptionsError(`the audit rate must be in [0, 1], got ${auditRate}`)
    if (opts.verify === true && auditRate > 0) throw new AuditOptionsError('verify recomputes every hop step locally; an audit rate adds nothing to it: choose one')
    if (opts.push === true && (opts.verify === true || auditRate > 0)) {
      throw new PushOptionsError(`push cannot be combined with ${opts.verify === true ? 'verify' : 'auditRate'}: peers push their outputs to each other, so the client never sees the intermediate outputs it checks`)
    }
    const configOptions = { allowUnknownKeys: opts.allowUnknownConfig }
    const config = loadModelConfig(opts.modelDir, configOptions)
    const tokenizer = TextTokenizer.load(opts.modelDir)
    const vocabulary = TokenVocabulary.load(opts.modelDir, config.vocabSize)
    const modelId = opts.modelId ?? modelIdFor(opts.modelDir, configOptions)
    const log = componentLogger('client', opts.logger)
    const node = await createSwarmNode({ bootstrap: opts.bootstrap, dhtMode: 'client', relay: 'off', holePunch: opts.holePunch, logger: opts.logger })
    let head: WorkerHeadEngine | null = null
    let draft: DraftModel | null = null
    try {
      await withTimeout(opts.connectTimeoutMs ?? 10_000, opts.signal, async (signal) => { await waitForRoutingTable(node, 1, signal) }).catch((err: Error) => {
        throw new Error(`could not reach any bootstrap peer (${opts.bootstrap.join(', ')}): ${err.message}`)
      })
      head = await WorkerHeadEngine.load(opts.modelDir, { threads: opts.threads, weightFormat: opts.headFormat, allowUnknownConfig: opts.allowUnknownConfig })
      if (opts.draftModel !== undefined) draft = await DraftModel.load(config, { threads: opts.threads, spanCacheDir: defaultCacheDir(), ...opts.draftModel })
      return new Swarm(node, modelId, config, head, tokenizer, vocabulary, new DhtCandidates(node, modelId, config.numLayers, config.family), opts, log, draft)
    } catch (err) {
      await draft?.close()
      await head?.dispose()
      await node.stop()
      throw err
    }
  }

  /**
   * Streams token events then a done event; each call gets its own chain of peer sessions. The
   * done event also lists the re-routes and, when verifying, the verified hop steps and the
   * peers caught computing wrong outputs.
   */
  async * generate (prompt: Prompt, opts: SwarmGenerateOptions = {}): AsyncGenerator<GenerationEvent> {
    const ids = promptIds(this.tokenizer, prompt)
    const maxLength = Math.min(this.config.maxPositions, ids.length + (opts.maxNewTokens ?? 32))
    const verify = opts.verify ?? this.opts.verify ?? false
    const auditor = verify ? undefined : this.auditor(maxLength, opts.onAudit)
    const chain = await this.openChain(maxLength, verify, opts.signal, auditor)
    let reported = 0
    let route: RouteHop[] = []
    try {
      const speculate = opts.speculate ?? this.opts.speculate
      for await (const e of withDrafter(this.draft, speculate, maxLength, (drafter) => runGeneration(this.head, chain, this.tokenizer, { ids }, { drafter, ...opts, speculate }))) {
        for (; reported < chain.rerouteLog.length; reported++) opts.onReroute?.(chain.rerouteLog[reported])
        if (e.event !== 'done') {
          route = e.route
          yield e
          continue
        }
        const rerouteLog = chain.rerouteLog.map((r) => ({
          failedPeer: r.failedPeer, reason: r.reason, start: r.start, end: r.end, recoveryMs: r.recoveryMs,
          replacement: r.replacement.map((h) => ({ peer: h.peerId, start: h.start, end: h.end }))
        }))
        yield {
          ...e,
          rerouteLog,
          paths: route.map((h) => ({ peer: h.peer, path: this.pathTo(h.peer) })),
          ...(verify ? { verifiedSteps: chain.verifiedSteps } : {}),
          ...(verify || auditor !== undefined ? { rejectedPeers: [...chain.rejectedPeers] } : {}),
          ...(auditor !== undefined ? { audit: { ...auditor.stats, liars: [...auditor.stats.liars] } } : {})
        }
      }
    } finally {
      await chain.close()
    }
  }

  /**
   * Log-probability of every token of `prompt` given the ones before it, through the swarm:
   * prefill passes only, one chain session per window (see scoreTokens).
   */
  async score (prompt: Prompt, opts: ScoreOptions = {}): Promise<ScoreResult> {
    const verify = this.opts.verify ?? false
    return await scoreTokens(this.head, async (maxLength) => await this.openChain(maxLength, verify, opts.signal, verify ? undefined : this.auditor(maxLength)), promptIds(this.tokenizer, prompt), opts)
  }

  /** A replica auditor for one chain session, when auditing is on. */
  private auditor (maxLength: number, onEvent?: (e: AuditEvent) => void): ReplicaAuditor | undefined {
    const rate = this.opts.auditRate ?? 0
    if (rate === 0) return undefined
    return new ReplicaAuditor(this.node, this.candidates, {
      rate,
      modelId: this.modelId,
      hiddenSize: this.config.hiddenSize,
      maxLength,
      wireDtype: this.opts.wireDtype ?? 'f32',
      stepTimeoutMs: this.opts.stepTimeoutMs,
      referee: this.opts.auditReferee === 'replicas' ? undefined : this.localVerifier(),
      liars: this.liars,
      onEvent,
      log: this.log
    })
  }

  private localVerifier (): LocalVerifier {
    return (this.verifier ??= new LocalVerifier(this.opts.modelDir, { threads: this.opts.threads, allowUnknownConfig: this.opts.allowUnknownConfig }))
  }

  private async openChain (maxLength: number, verify: boolean, signal?: AbortSignal, auditor?: ReplicaAuditor): Promise<ChainSession> {
    if (verify && this.opts.wireDtype === 'f16') throw new VerifyWireError()
    const verifier = verify ? this.localVerifier() : auditor
    return await ChainSession.open(this.node, this.candidates, {
      modelId: this.modelId,
      numBlocks: this.config.numLayers,
      hiddenSize: this.config.hiddenSize,
      maxLength,
      wireDtype: this.opts.wireDtype,
      stepTimeoutMs: this.opts.stepTimeoutMs,
      coverageWaitMs: this.opts.coverageWaitMs,
      verifier,
      excluded: this.liars,
      push: this.opts.push,
      direct: this.opts.direct,
      log: this.log
    }, signal)
  }

  /** 'direct' when some open connection to `peer` is not through a relay */
  private pathTo (peer: string): 'direct' | 'relayed' {
    const conns = this.node.getConnections(peerIdFromString(peer))
    return conns.some((c) => !c.remoteAddr.getComponents().some((x) => x.name === 'p2p-circuit')) ? 'direct' : 'relayed'
  }

  async close (): Promise<void> {
    await this.draft?.close()
    await this.verifier?.close()
    await this.head.dispose()
    await this.node.stop()
  }
}
