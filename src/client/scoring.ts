// Scoring a token sequence: the log-probability of every token given the ones before it, from
// prefill passes only (no sampling). Perplexity = exp(mean negative log-likelihood).
import { performance } from 'node:perf_hooks'
import { GenerationError, type BlockPipeline, type Head } from './generation.ts'
import { tokenLogprob } from './logprobs.ts'

/** prefill positions per step: bounds the hidden states on the wire and the logits in memory */
export const SCORE_STEP_TOKENS = 256

export interface ScoreOptions {
  /**
   * positions per window (default: the model's max positions). Longer texts are cut into
   * consecutive windows scored independently; the first token of each window has no score.
   */
  window?: number
  signal?: AbortSignal
}

export interface ScoreResult {
  tokens: number[]
  /** ln p(token | the tokens before it in its window); null for the first token of each window */
  logprobs: Array<number | null>
  /** tokens with a score */
  scored: number
  /** −Σ logprobs, nats */
  nll: number
  meanNll: number
  /** exp(meanNll) */
  perplexity: number
  windows: number
  /** tokens scored per second of wall time */
  tokensPerSecond: number
  /** swarm only: re-routes during scoring */
  reroutes: number
}

/** Opens a fresh pipeline (a KV cache session) holding up to `maxLength` positions. */
export type PipelineFactory = (maxLength: number) => Promise<BlockPipeline>

export async function scoreTokens (head: Head, open: PipelineFactory, tokens: number[], opts: ScoreOptions = {}): Promise<ScoreResult> {
  const window = opts.window ?? head.config.maxPositions
  if (tokens.length < 2) throw new GenerationError(`scoring needs at least 2 tokens, got ${tokens.length}`)
  if (!Number.isInteger(window) || window < 2 || window > head.config.maxPositions) {
    throw new GenerationError(`the window must be an integer in [2, ${head.config.maxPositions}] (the model's positions), got ${window}`)
  }
  const V = head.config.vocabSize
  const logprobs: Array<number | null> = []
  let reroutes = 0
  let windows = 0
  const t0 = performance.now()
  for (let start = 0; start < tokens.length; start += window) {
    const ids = tokens.slice(start, start + window)
    const pipeline = await open(ids.length)
    windows++
    try {
      logprobs.push(null)
      for (let pos = 0; pos < ids.length; pos += SCORE_STEP_TOKENS) {
        opts.signal?.throwIfAborted()
        const chunk = ids.slice(pos, pos + SCORE_STEP_TOKENS)
        const logits = await head.logits(await pipeline.forward(await head.embed(chunk), pos, opts.signal), true)
        // row r predicts the token at pos + r + 1
        for (let r = 0; r < chunk.length && pos + r + 1 < ids.length; r++) logprobs.push(tokenLogprob(logits, V, r, ids[pos + r + 1]).logprob)
      }
      reroutes += pipeline.reroutes
    } finally {
      await pipeline.close()
    }
  }
  const seconds = (performance.now() - t0) / 1000
  const scored = logprobs.filter((l) => l !== null)
  const nll = -scored.reduce((a, b) => a + b, 0)
  const meanNll = scored.length > 0 ? nll / scored.length : 0
  return { tokens, logprobs, scored: scored.length, nll, meanNll, perplexity: Math.exp(meanNll), windows, tokensPerSecond: seconds > 0 ? tokens.length / seconds : 0, reroutes }
}
