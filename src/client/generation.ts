// The token loop shared by local and swarm generation: embed → blocks (a pipeline of spans,
// local or remote) → head → sample, one prefill step for the prompt and one step per new token.
import type { ModelConfig } from '../shards/config.ts'
import { Sampler, type SamplingOptions } from './sampling.ts'
import { tokenLogprob, type TokenLogprob } from './logprobs.ts'
import type { TokenConstraint } from './constraint.ts'

/** Which server computed which blocks for a token. */
export interface RouteHop { peer: string, start: number, end: number }

/** Everything that runs the transformer blocks, start to end, keeping the KV cache between steps. */
export interface BlockPipeline {
  /** hidden (1, n, H) for positions [position, position + n) → output of the last block. */
  forward (hidden: Float32Array, position: number, signal?: AbortSignal): Promise<Float32Array>
  /** the hops the last forward went through */
  route (): RouteHop[]
  /** re-routes so far (0 for local pipelines) */
  readonly reroutes: number
  close (): Promise<void>
}

export interface Head {
  readonly config: ModelConfig
  embed (tokens: number[]): Promise<Float32Array>
  /** logits of the last row of hidden (1, n, H); with `allRows`, of every row: (n, vocab) */
  logits (hidden: Float32Array, allRows?: boolean): Promise<Float32Array>
}

export interface GenerateOptions extends SamplingOptions {
  /** tokens to generate at most (default 32) */
  maxNewTokens?: number
  /** keep going past EOS (default false) */
  ignoreEos?: boolean
  /** give every generated token its log-probability and this many most likely alternatives */
  logprobs?: number
  /** give the prompt tokens their log-probabilities too, from the prefill pass (the first has none) */
  promptLogprobs?: boolean
  /** only tokens it allows are sampled; generation stops when it is complete */
  constraint?: TokenConstraint
  signal?: AbortSignal
}

export interface TokenEvent {
  event: 'token'
  index: number
  token: number
  route: RouteHop[]
  /** no token follows (the limit is reached, it is EOS, or the constraint is complete) */
  last: boolean
  /** with `logprobs` */
  logprob?: TokenLogprob
  /** with `promptLogprobs`, on the first token: one per prompt token, null for the first */
  promptLogprobs?: Array<TokenLogprob | null>
}

export class GenerationError extends Error {
  override name = 'GenerationError'
}

/** Streams generated tokens; the prompt must be non-empty and fit the model's positions. */
export async function * generateTokens (head: Head, pipeline: BlockPipeline, prompt: number[], opts: GenerateOptions = {}): AsyncGenerator<TokenEvent> {
  const cfg = head.config
  const maxNew = opts.maxNewTokens ?? 32
  if (prompt.length === 0) throw new GenerationError('the prompt is empty')
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new GenerationError(`max new tokens must be a non-negative integer, got ${maxNew}`)
  if (prompt.length + maxNew > cfg.maxPositions) {
    throw new GenerationError(`prompt of ${prompt.length} tokens plus ${maxNew} new tokens exceeds the model's ${cfg.maxPositions} positions`)
  }
  const sampler = new Sampler(opts)
  const { constraint } = opts
  const seen = [...prompt]
  let input = prompt
  let position = 0
  for (let index = 0; index < maxNew; index++) {
    opts.signal?.throwIfAborted()
    const hidden = await pipeline.forward(await head.embed(input), position, opts.signal)
    position += input.length
    // prompt log-probabilities: every row of the prefill's output, in the same head run
    const allRows = index === 0 && opts.promptLogprobs === true
    const logits = await head.logits(hidden, allRows)
    const V = cfg.vocabSize
    const rows = logits.length / V
    const next = allRows ? logits.subarray((rows - 1) * V) : logits
    const token = sampler.next(constraint === undefined ? next : masked(next, constraint.allowed(maxNew - index)), seen)
    constraint?.accept(token)
    seen.push(token)
    const eos = opts.ignoreEos !== true && cfg.eosTokenIds.includes(token)
    const complete = constraint?.complete === true
    yield {
      event: 'token',
      index,
      token,
      route: pipeline.route(),
      last: eos || complete || index === maxNew - 1,
      ...(opts.logprobs !== undefined ? { logprob: tokenLogprob(logits, V, rows - 1, token, opts.logprobs) } : {}),
      ...(allRows ? { promptLogprobs: input.map((t, i) => i === 0 ? null : tokenLogprob(logits, V, i - 1, t, opts.logprobs ?? 0)) } : {})
    }
    if (eos || complete) return
    input = [token]
  }
}

/** `logits` with the tokens the mask does not allow at -∞ (they can never be sampled). */
function masked (logits: Float32Array, allowed: Uint8Array): Float32Array {
  const out = Float32Array.from(logits)
  let any = false
  for (let i = 0; i < out.length; i++) {
    if (allowed[i] === 1) any = true
    else out[i] = -Infinity
  }
  if (!any) throw new GenerationError('the output constraint allows no token at this point')
  return out
}
