// The client's share of the model: token embeddings in, logits out (final RMSNorm + LM head).
import * as ort from 'onnxruntime-node'
import { loadModelConfig, type ModelConfig } from './config.ts'
import { ModelWeights, tensorNames } from './weights.ts'
import { GraphBuilder, DataType } from './onnx/builder.ts'
import { isQuantized, linear, type WeightFormat } from './span-graph.ts'
import { tensorRows } from './matrix-source.ts'
import { createSession, type RuntimeOptions, type OrtSession } from './ort-session.ts'
import { EngineInputError } from './errors.ts'
import { embeddingTable, type EmbeddingTable } from './embedding-table.ts'

export interface HeadEngineOptions extends RuntimeOptions {
  /** how the embeddings and LM head are stored and multiplied (default f32: exact) */
  weightFormat?: WeightFormat
  /** accept config.json keys strata does not know (the CLI's --allow-unknown-config; callers warn) */
  allowUnknownConfig?: boolean
}

export class HeadEngine {
  private constructor (
    readonly config: ModelConfig,
    /** (vocab, hidden) */
    private readonly embeddings: EmbeddingTable,
    private readonly session: OrtSession
  ) {}

  static async load (modelDir: string, opts: HeadEngineOptions = {}): Promise<HeadEngine> {
    const cfg = loadModelConfig(modelDir, { allowUnknownKeys: opts.allowUnknownConfig })
    const weights = new ModelWeights(modelDir)
    try {
      const H = cfg.hiddenSize
      const fmt = opts.weightFormat ?? 'f32'
      const V = cfg.vocabSize
      const embeddings = embeddingTable(weights.float32(tensorNames.embed, [V, H]), V, H, fmt)
      let lmHead: string
      if (weights.has(tensorNames.lmHead)) lmHead = tensorNames.lmHead
      else if (cfg.tieWordEmbeddings) lmHead = tensorNames.embed
      else throw new EngineInputError(`${tensorNames.lmHead} is missing and tie_word_embeddings is false`)
      const g = new GraphBuilder('strata_head')
      const x = g.input('hidden', DataType.FLOAT, [1, 'seq', H])
      const norm = g.floatInit('final_norm', [H], weights.float32(tensorNames.finalNorm, [H]))
      const normed = g.op('SimplifiedLayerNormalization', [x, norm], { attrs: { axis: -1, epsilon: { float: cfg.rmsNormEps }, stash_type: 1 } })
      const logits = linear(g, 'lm_head', normed, tensorRows(weights, [[lmHead, V]], H), fmt)
      g.op('Identity', [logits], { output: 'logits' })
      g.output('logits', DataType.FLOAT, [1, 'seq', V])
      return new HeadEngine(cfg, embeddings, await createSession(g, opts, { prepack: isQuantized(fmt) }))
    } finally {
      weights.close()
    }
  }

  /** Embedding rows for `tokens`: (1, n, H). */
  embed (tokens: readonly number[]): Float32Array {
    const H = this.config.hiddenSize
    const out = new Float32Array(tokens.length * H)
    tokens.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0 || t >= this.config.vocabSize) throw new EngineInputError(`token id ${t} is outside the vocabulary [0, ${this.config.vocabSize})`)
      this.embeddings.row(t, out, i * H)
    })
    return out
  }

  /**
   * Logits for the last row of `hidden` (1, n, H): (vocab); with `allRows`, for every row in one
   * run: (n, vocab), row-major (prompt log-probabilities come from the prefill's hidden states).
   */
  async logits (hidden: Float32Array, allRows = false): Promise<Float32Array> {
    const H = this.config.hiddenSize
    if (hidden.length === 0 || hidden.length % H !== 0) throw new EngineInputError(`hidden states of ${hidden.length} floats are not whole ${H}-wide rows`)
    const rows = allRows ? hidden : hidden.slice(hidden.length - H)
    const out = await this.session.run({ hidden: new ort.Tensor('float32', rows, [1, rows.length / H, H]) })
    return out.logits.data as Float32Array
  }

  async dispose (): Promise<void> {
    await this.session.release()
  }
}
