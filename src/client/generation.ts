// The token loop shared by local and swarm generation: embed → blocks (a pipeline of spans,
// local or remote) → head → sample, one prefill step for the prompt and one step per new token.
import type { ModelConfig } from '../shards/config.ts'
import { Sampler, type SamplingOptions } from './sampling.ts'

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
  logits (hidden: Float32Array): Promise<Float32Array>
}

export interface GenerateOptions extends SamplingOptions {
  /** tokens to generate at most (default 32) */
  maxNewTokens?: number
  /** keep going past EOS (default false) */
  ignoreEos?: boolean
  signal?: AbortSignal
}

export interface TokenEvent {
  event: 'token'
  index: number
  token: number
  route: RouteHop[]
  /** no token follows (the limit is reached or it is EOS) */
  last: boolean
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
  const seen = [...prompt]
  let input = prompt
  let position = 0
  for (let index = 0; index < maxNew; index++) {
    opts.signal?.throwIfAborted()
    const hidden = await pipeline.forward(await head.embed(input), position, opts.signal)
    position += input.length
    const token = sampler.next(await head.logits(hidden), seen)
    seen.push(token)
    const eos = opts.ignoreEos !== true && cfg.eosTokenIds.includes(token)
    yield { event: 'token', index, token, route: pipeline.route(), last: eos || index === maxNew - 1 }
    if (eos) return
    input = [token]
  }
}
