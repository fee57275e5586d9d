// The SDK facade: connect to a swarm, generate through it.
//
//   const swarm = await Swarm.connect({ bootstrap: ['/ip4/…/p2p/…'], modelDir: './model' })
//   for await (const e of swarm.generate({ text: 'Hello' }, { maxNewTokens: 20 })) …
//   await swarm.close()
//
// The client holds only embeddings, final norm, LM head and tokenizer; the blocks run on peers.
import { loadModelConfig, modelIdFor, type ModelConfig } from '../shards/config.ts'
import { TextTokenizer } from '../shards/tokenizer.ts'
import { WorkerHeadEngine } from '../shards/worker/engine-client.ts'
import type { WireDtype } from '../protocol/tensor.ts'
import { createSwarmNode, waitForRoutingTable, type SwarmNode } from '../routing/index.ts'
import { ChainSession, type RerouteEvent } from '../routing/chain-session.ts'
import { DhtCandidates } from '../routing/dht-candidates.ts'
import { componentLogger, type Logger } from '../routing/logger.ts'
import { runGeneration, promptIds, type GenerationEvent, type Prompt } from './session.ts'
import type { GenerateOptions } from './generation.ts'

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
  threads?: number
  logger?: Logger
  signal?: AbortSignal
}

export interface SwarmGenerateOptions extends GenerateOptions {
  /** called on every re-route */
  onReroute?: (e: RerouteEvent) => void
}

export class Swarm {
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
    const config = loadModelConfig(opts.modelDir)
    const tokenizer = TextTokenizer.load(opts.modelDir)
    const modelId = opts.modelId ?? modelIdFor(opts.modelDir)
    const log = componentLogger('client', opts.logger)
    const node = await createSwarmNode({ bootstrap: opts.bootstrap, dhtMode: 'client', logger: opts.logger })
    let head: WorkerHeadEngine | null = null
    try {
      const wait = AbortSignal.timeout(opts.connectTimeoutMs ?? 10_000)
      await waitForRoutingTable(node, 1, opts.signal === undefined ? wait : AbortSignal.any([wait, opts.signal])).catch((err: Error) => {
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

  /** Streams token events then a done event; each call gets its own chain of peer sessions. */
  async * generate (prompt: Prompt, opts: SwarmGenerateOptions = {}): AsyncGenerator<GenerationEvent> {
    const ids = promptIds(this.tokenizer, prompt)
    const maxLength = Math.min(this.config.maxPositions, ids.length + (opts.maxNewTokens ?? 32))
    const chain = await ChainSession.open(this.node, this.candidates, {
      modelId: this.modelId,
      numBlocks: this.config.numLayers,
      hiddenSize: this.config.hiddenSize,
      maxLength,
      wireDtype: this.opts.wireDtype,
      stepTimeoutMs: this.opts.stepTimeoutMs,
      log: this.log
    }, opts.signal)
    let reported = 0
    try {
      for await (const e of runGeneration(this.head, chain, this.tokenizer, { ids }, opts)) {
        for (; reported < chain.rerouteLog.length; reported++) opts.onReroute?.(chain.rerouteLog[reported])
        yield e
      }
    } finally {
      await chain.close()
    }
  }

  async close (): Promise<void> {
    await this.head.dispose()
    await this.node.stop()
  }
}
