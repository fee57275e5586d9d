// The SDK facade: connect to a swarm, generate through it.
//
//   const swarm = await Swarm.connect({ bootstrap: ['/ip4/…/p2p/…'], modelDir: './model' })
//   for await (const e of swarm.generate({ text: 'Hello' }, { maxNewTokens: 20 })) …
//   swarm.generate({ messages: [{ role: 'system', content: '…' }, { role: 'user', content: '…' }] }) — through the chat template
//   await swarm.close()
//
// The client holds only embeddings, final norm, LM head and tokenizer; the blocks run on peers.
// With `verify`, it also recomputes every hop locally (it then needs the block weights too) and
// routes around peers whose outputs differ.
import { loadModelConfig, modelIdFor, type ModelConfig } from '../shards/config.ts'
import { TextTokenizer } from '../shards/tokenizer.ts'
import { WorkerHeadEngine } from '../shards/worker/engine-client.ts'
import type { WireDtype } from '../protocol/tensor.ts'
import {
  createSwarmNode, waitForRoutingTable, withTimeout, componentLogger, ChainSession, DhtCandidates,
  type SwarmNode, type RerouteEvent, type Logger
} from '../routing/index.ts'
import { runGeneration, promptIds, type GenerationEvent, type Prompt } from './session.ts'
import type { GenerateOptions } from './generation.ts'
import { LocalVerifier } from './verifier.ts'

export interface SwarmOptions {
  /** bootstrap peer multiaddrs (each with /p2p/<id>) */
  bootstrap: string[]
  /** model directory: config.json, tokenizer, embeddings and LM head (block weights are not read) */
  modelDir: string
  /** default: derived from config.json, as peers do */
  modelId?: string
  /** hidden states on the wire: f32 (exact, default) or f16 (half the bytes) */
  wireDtype?: WireDtype
  /** per-hop step deadline, ms (default 5 000) */
  stepTimeoutMs?: number
  /** how long to wait for the first DHT peer, ms (default 10 000) */
  connectTimeoutMs?: number
  /**
   * check every peer's output against local recomputation (needs the block weights in
   * `modelDir` and the f32 wire); peers that differ are routed around (default false)
   */
  verify?: boolean
  threads?: number
  logger?: Logger
  signal?: AbortSignal
}

export interface SwarmGenerateOptions extends GenerateOptions {
  /** called on every re-route */
  onReroute?: (e: RerouteEvent) => void
  /** override the swarm's `verify` for this generation */
  verify?: boolean
}

/** Verification of outputs needs them bit-exact: a lossy wire could never match. */
export class VerifyWireError extends Error {
  override name = 'VerifyWireError'
  constructor () { super('verifying peers compares outputs bit for bit and needs the f32 wire, not f16') }
}

export class Swarm {
  private verifier: LocalVerifier | null = null

  private constructor (
    readonly node: SwarmNode,
    readonly modelId: string,
    readonly config: ModelConfig,
    private readonly head: WorkerHeadEngine,
    readonly tokenizer: TextTokenizer | null,
    private readonly candidates: DhtCandidates,
    private readonly opts: SwarmOptions,
    private readonly log: Logger
  ) {}

  static async connect (opts: SwarmOptions): Promise<Swarm> {
    if (opts.bootstrap.length === 0) throw new Error('Swarm.connect needs at least one bootstrap multiaddr')
    if (opts.verify === true && opts.wireDtype === 'f16') throw new VerifyWireError()
    const config = loadModelConfig(opts.modelDir)
    const tokenizer = TextTokenizer.load(opts.modelDir)
    const modelId = opts.modelId ?? modelIdFor(opts.modelDir)
    const log = componentLogger('client', opts.logger)
    const node = await createSwarmNode({ bootstrap: opts.bootstrap, dhtMode: 'client', logger: opts.logger })
    let head: WorkerHeadEngine | null = null
    try {
      await withTimeout(opts.connectTimeoutMs ?? 10_000, opts.signal, async (signal) => { await waitForRoutingTable(node, 1, signal) }).catch((err: Error) => {
        throw new Error(`could not reach any bootstrap peer (${opts.bootstrap.join(', ')}): ${err.message}`)
      })
      head = await WorkerHeadEngine.load(opts.modelDir, { threads: opts.threads })
      return new Swarm(node, modelId, config, head, tokenizer, new DhtCandidates(node, modelId, config.numLayers), opts, log)
    } catch (err) {
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
    if (verify && this.opts.wireDtype === 'f16') throw new VerifyWireError()
    const verifier = verify ? (this.verifier ??= new LocalVerifier(this.opts.modelDir, { threads: this.opts.threads })) : undefined
    const chain = await ChainSession.open(this.node, this.candidates, {
      modelId: this.modelId,
      numBlocks: this.config.numLayers,
      hiddenSize: this.config.hiddenSize,
      maxLength,
      wireDtype: this.opts.wireDtype,
      stepTimeoutMs: this.opts.stepTimeoutMs,
      verifier,
      log: this.log
    }, opts.signal)
    let reported = 0
    try {
      for await (const e of runGeneration(this.head, chain, this.tokenizer, { ids }, opts)) {
        for (; reported < chain.rerouteLog.length; reported++) opts.onReroute?.(chain.rerouteLog[reported])
        if (e.event !== 'done') {
          yield e
          continue
        }
        const rerouteLog = chain.rerouteLog.map((r) => ({
          failedPeer: r.failedPeer, reason: r.reason, start: r.start, end: r.end, recoveryMs: r.recoveryMs,
          replacement: r.replacement.map((h) => ({ peer: h.peerId, start: h.start, end: h.end }))
        }))
        yield { ...e, rerouteLog, ...(verify ? { verifiedSteps: chain.verifiedSteps, rejectedPeers: [...chain.rejectedPeers] } : {}) }
      }
    } finally {
      await chain.close()
    }
  }

  async close (): Promise<void> {
    await this.verifier?.close()
    await this.head.dispose()
    await this.node.stop()
  }
}
