// The whole model in this process: the baseline `strata generate` runs without --bootstrap.
import { loadModelConfig } from '../shards/config.ts'
import { defaultCacheDir } from '../shards/cache-dir.ts'
import { TextTokenizer } from '../shards/tokenizer.ts'
import { WorkerHeadEngine } from '../shards/worker/engine-client.ts'
import type { WeightFormat } from '../shards/span-graph.ts'
import { LocalPipeline } from './local.ts'
import { runGeneration, promptIds, type GenerationEvent, type Prompt } from './session.ts'
import { DraftModel, withDrafter, type DraftModelOptions } from './draft-model.ts'
import type { GenerateOptions } from './generation.ts'
import { scoreTokens, type ScoreOptions, type ScoreResult } from './scoring.ts'

export interface LocalModelOptions {
  weightFormat?: WeightFormat
  /** the client's embeddings and LM head: f32 (default, exact) or stored as f16/int8/int4 — less read per token, not bit-identical */
  headFormat?: WeightFormat
  threads?: number
  /** accept config.json keys strata does not know (the CLI's --allow-unknown-config; callers warn) */
  allowUnknownConfig?: boolean
  /** split the blocks into these spans (default: one span) */
  spans?: Array<[number, number]>
  /** where spans are cached once quantized or widened to f32, as peers do (default: defaultCacheDir()) */
  spanCacheDir?: string
  /** a local model that drafts for speculative decoding (used when generating with `speculate`) */
  draftModel?: DraftModelOptions
}

export class LocalModel {
  private constructor (
    readonly modelDir: string,
    private readonly head: WorkerHeadEngine,
    private readonly tokenizer: TextTokenizer | null,
    private readonly opts: LocalModelOptions,
    private readonly draft: DraftModel | null
  ) {}

  static async load (modelDir: string, opts: LocalModelOptions = {}): Promise<LocalModel> {
    loadModelConfig(modelDir, { allowUnknownKeys: opts.allowUnknownConfig }) // fail fast with a config error before starting workers
    const tokenizer = TextTokenizer.load(modelDir)
    const spanCacheDir = opts.spanCacheDir ?? defaultCacheDir()
    const head = await WorkerHeadEngine.load(modelDir, { threads: opts.threads, weightFormat: opts.headFormat, allowUnknownConfig: opts.allowUnknownConfig })
    try {
      const draft = opts.draftModel === undefined ? null : await DraftModel.load(head.config, { threads: opts.threads, spanCacheDir, ...opts.draftModel })
      return new LocalModel(modelDir, head, tokenizer, { ...opts, spanCacheDir }, draft)
    } catch (err) {
      await head.dispose()
      throw err
    }
  }

  get hasTokenizer (): boolean {
    return this.tokenizer !== null
  }

  async * generate (prompt: Prompt, opts: GenerateOptions = {}): AsyncGenerator<GenerationEvent> {
    const ids = promptIds(this.tokenizer, prompt)
    const pipeline = await LocalPipeline.load(this.modelDir, this.head.config.numLayers, this.opts)
    try {
      const maxLength = Math.min(this.head.config.maxPositions, ids.length + (opts.maxNewTokens ?? 32))
      yield * withDrafter(this.draft, opts.speculate, maxLength, (drafter) => runGeneration(this.head, pipeline, this.tokenizer, { ids }, { drafter, ...opts }))
    } finally {
      await pipeline.close()
    }
  }

  /** Log-probability of every token of `prompt` given the ones before it (see scoreTokens). */
  async score (prompt: Prompt, opts: ScoreOptions = {}): Promise<ScoreResult> {
    const open = async (maxLength: number): Promise<LocalPipeline> => await LocalPipeline.load(this.modelDir, this.head.config.numLayers, { ...this.opts, maxLength })
    return await scoreTokens(this.head, open, promptIds(this.tokenizer, prompt), opts)
  }

  async close (): Promise<void> {
    await this.draft?.close()
    await this.head.dispose()
  }
}
