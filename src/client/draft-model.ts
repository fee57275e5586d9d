// A small local model that drafts tokens for speculative decoding: greedy tokens from a model
// sharing the target's vocabulary — a smaller model of the family, or the same checkpoint
// quantized (int8 by default), which agrees with the full-precision model on most tokens at a
// fraction of its cost per token. Its output only proposes tokens: verification by the target
// model decides every token, so the generated tokens are the target's whatever the drafter says.
//
// The draft model runs in this process (worker threads) and keeps one KV cache per generation.
// Before each proposal the cache is brought in line with the tokens so far: positions past the
// longest common prefix (its own rejected draft tokens) are cut, the tokens it has not seen are
// fed in one step, and then it decodes k tokens greedily.
import { randomUUID } from 'node:crypto'
import { loadModelConfig, type ModelConfig } from '../shards/config.ts'
import type { WeightFormat } from '../shards/span-graph.ts'
import { WorkerHeadEngine, WorkerSpanEngine } from '../shards/worker/engine-client.ts'
import type { Drafter } from './draft.ts'

export interface DraftModelOptions {
  /** the draft model's directory (config.json and weights) */
  dir: string
  /** its blocks' weight format (default int8) */
  weightFormat?: WeightFormat
  /** its embeddings and LM head (default: the blocks' format) */
  headFormat?: WeightFormat
  threads?: number
  allowUnknownConfig?: boolean
  /** where its span is cached once quantized or widened (see shards/span-cache.ts) */
  spanCacheDir?: string
}

/** The draft model cannot stand in for the target: it does not share its vocabulary. */
export class DraftModelMismatchError extends Error {
  override name = 'DraftModelMismatchError'
}

/** A loaded draft model; `drafter` gives each generation its own KV cache on it. */
export class DraftModel {
  private constructor (readonly dir: string, private readonly head: WorkerHeadEngine, private readonly span: WorkerSpanEngine) {}

  /** Loads `opts.dir` after checking that its tokens mean what `target`'s do. */
  static async load (target: ModelConfig, opts: DraftModelOptions): Promise<DraftModel> {
    const config = loadModelConfig(opts.dir, { allowUnknownKeys: opts.allowUnknownConfig })
    const mismatch = config.vocabSize !== target.vocabSize
      ? `vocabulary of ${config.vocabSize} tokens, the model's has ${target.vocabSize}`
      : config.bosTokenId !== target.bosTokenId ? `BOS token ${String(config.bosTokenId)}, the model's is ${String(target.bosTokenId)}` : null
    if (mismatch !== null) throw new DraftModelMismatchError(`draft model ${opts.dir}: ${mismatch}; a draft model must share the model's tokenizer`)
    const weightFormat = opts.weightFormat ?? 'int8'
    const common = { threads: opts.threads, allowUnknownConfig: opts.allowUnknownConfig }
    const head = await WorkerHeadEngine.load(opts.dir, { ...common, weightFormat: opts.headFormat ?? weightFormat })
    try {
      const span = await WorkerSpanEngine.load(opts.dir, { ...common, start: 0, end: config.numLayers, weightFormat, spanCacheDir: opts.spanCacheDir })
      return new DraftModel(opts.dir, head, span)
    } catch (err) {
      await head.dispose()
      throw err
    }
  }

  /** A drafter for one generation of at most `maxLength` positions; close it when done. */
  async drafter (maxLength: number): Promise<ModelDrafter> {
    const sessionId = randomUUID()
    const positions = Math.min(maxLength, this.span.config.maxPositions)
    await this.span.open(sessionId, positions)
    return new ModelDrafter(this.head, this.span, sessionId, positions)
  }

  async close (): Promise<void> {
    await Promise.all([this.head.dispose(), this.span.dispose()])
  }
}

export class ModelDrafter implements Drafter {
  readonly kind = 'model'
  /** tokens whose positions the draft KV cache holds, in order */
  private fed: number[] = []

  constructor (private readonly head: WorkerHeadEngine, private readonly span: WorkerSpanEngine, private readonly sessionId: string, private readonly maxLength: number) {}

  async propose (seen: readonly number[], k: number, signal?: AbortSignal): Promise<number[]> {
    let keep = 0
    while (keep < this.fed.length && keep < seen.length && this.fed[keep] === seen[keep]) keep++
    // the last token is always fed again if need be: its row gives the first draft token
    keep = Math.min(keep, seen.length - 1)
    // step i holds seen.length + i positions
    const n = Math.min(k, this.maxLength - seen.length + 1)
    if (n <= 0) return []
    if (keep < this.fed.length) {
      await this.span.truncate(this.sessionId, keep)
      this.fed.length = keep
    }
    let input = seen.slice(keep)
    const draft: number[] = []
    for (let i = 0; i < n; i++) {
      signal?.throwIfAborted()
      const hidden = await this.span.step(this.sessionId, await this.head.embed(input), this.fed.length)
      this.fed.push(...input)
      const token = argmax(await this.head.logits(hidden))
      draft.push(token)
      input = [token]
    }
    return draft
  }

  async close (): Promise<void> {
    await this.span.close(this.sessionId)
  }
}

function argmax (row: Float32Array): number {
  let best = 0
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i
  return best
}

/**
 * Runs one generation, given a drafter on `draft` for its `maxLength` positions when it
 * speculates with a draft model (`speculate` > 0), and closes the drafter afterwards.
 */
export async function * withDrafter<T> (draft: DraftModel | null, speculate: number | undefined, maxLength: number, run: (drafter: Drafter | undefined) => AsyncGenerator<T>): AsyncGenerator<T> {
  const drafter = draft !== null && (speculate ?? 0) > 0 ? await draft.drafter(maxLength) : undefined
  try {
    yield * run(drafter)
  } finally {
    await drafter?.close()
  }
}
