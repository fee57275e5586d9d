// The token loop shared by local and swarm generation: embed → blocks (a pipeline of spans,
// local or remote) → head → sample, one prefill step for the prompt and one step per new token.
//
// Speculative decoding (`speculate: k`): after the first token, each step feeds the last token
// plus up to k drafted tokens (prompt lookup or a draft model, see draft.ts; the length adapts to how often drafts
// are right) and gets logits for all of them in one pass. Tokens are then chosen row by row
// exactly as plain decoding would choose them — the same sampler call, with the same tokens seen
// and the same constraint state — and the draft is accepted for as long as it agrees; the first
// disagreement (or the row after the last draft token) gives one more token, and the KV cache is
// cut back to the accepted length. Every step therefore yields at least one token, and the tokens
// are plain decoding's: greedy, and seeded sampling too, since the sampler draws once per emitted
// token. (One caveat: onnxruntime rounds a multi-row step differently from one-row steps, ~1e-6
// relative, so a near-exact tie between the two best logits could go the other way.) With a
// deterministic drafter this *is* the standard speculative-sampling rule: a draft token x with
// draft distribution δ(x) is accepted with probability min(1, p(x)/1) = p(x), and on rejection
// the token comes from p with x removed — exactly what sampling from p and comparing with x does.
import type { ModelConfig } from '../shards/config.ts'
import { Sampler, type SamplingOptions } from './sampling.ts'
import { tokenLogprob, type TokenLogprob } from './logprobs.ts'
import type { TokenConstraint } from './constraint.ts'
import { promptLookup, type Drafter } from './draft.ts'

/** Which server computed which blocks for a token. */
/** `direct`: the hop's steps run over the peer's direct data path (swarm hops only) */
export interface RouteHop { peer: string, start: number, end: number, direct?: boolean }

/** Everything that runs the transformer blocks, start to end, keeping the KV cache between steps. */
export interface BlockPipeline {
  /** hidden (1, n, H) for positions [position, position + n) → output of the last block. */
  forward (hidden: Float32Array, position: number, signal?: AbortSignal): Promise<Float32Array>
  /** the hops the last forward went through */
  route (): RouteHop[]
  /** drops every position from `length` on from the KV caches (speculative rollback) */
  truncate (length: number, signal?: AbortSignal): Promise<void>
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
  /** speculative decoding: draft up to this many tokens per step and verify them in one pass (default 0: off) */
  speculate?: number
  /** who drafts when speculating (default: prompt lookup) */
  drafter?: Drafter
  signal?: AbortSignal
}

/** Speculation of one verification step, on the last token that step produced. */
export interface DraftOutcome {
  /** draft tokens fed for verification */
  proposed: number
  /** of them, the ones the model agreed with (each a token gained without a step of its own) */
  accepted: number
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
  /** with `speculate`, on the last token of each step that verified a draft */
  draft?: DraftOutcome
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
  const speculate = opts.speculate ?? 0
  if (!Number.isInteger(speculate) || speculate < 0) throw new GenerationError(`speculate must be a non-negative integer (draft tokens per step), got ${speculate}`)
  const sampler = new Sampler(opts)
  const { constraint } = opts
  // draft length, adapted as in Hugging Face's assisted generation: +2 after a wholly accepted
  // draft, −1 after a rejection, within [1, speculate] — text that does not repeat costs little
  let draftLength = speculate
  const drafter = opts.drafter ?? promptLookup
  const V = cfg.vocabSize
  const seen = [...prompt]
  let input = prompt
  let position = 0
  for (let index = 0; index < maxNew;) {
    opts.signal?.throwIfAborted()
    // no draft for the prefill, nor beyond the last token wanted
    const draft = index === 0 || speculate === 0 ? [] : await drafter.propose(seen, Math.min(draftLength, maxNew - index - 1), opts.signal)
    const fed = draft.length === 0 ? input : [...input, ...draft]
    const hidden = await pipeline.forward(await head.embed(fed), position, opts.signal)
    position += fed.length
    // prompt log-probabilities: every row of the prefill's output, in the same head run
    const promptRows = index === 0 && opts.promptLogprobs === true
    const logits = await head.logits(hidden, promptRows || draft.length > 0)
    const rows = logits.length / V
    // rows [rows - 1 - draft.length, rows) predict the token after the input, then after each draft token
    for (let r = rows - 1 - draft.length; r < rows; r++) {
      const row = logits.subarray(r * V, (r + 1) * V)
      const token = sampler.next(constraint === undefined ? row : masked(row, constraint.allowed(maxNew - index)), seen)
      constraint?.accept(token)
      seen.push(token)
      const d = r - (rows - 1 - draft.length) // which draft token this row checks
      const rejected = d < draft.length && token !== draft[d]
      const eos = opts.ignoreEos !== true && cfg.eosTokenIds.includes(token)
      const complete = constraint?.complete === true
      const last = eos || complete || index === maxNew - 1
      const stepEnds = last || rejected || d === draft.length
      yield {
        event: 'token',
        index,
        token,
        route: pipeline.route(),
        last,
        ...(opts.logprobs !== undefined ? { logprob: tokenLogprob(logits, V, r, token, opts.logprobs) } : {}),
        ...(promptRows ? { promptLogprobs: input.map((t, i) => i === 0 ? null : tokenLogprob(logits, V, i - 1, t, opts.logprobs ?? 0)) } : {}),
        ...(draft.length > 0 && stepEnds ? { draft: { proposed: draft.length, accepted: d + (rejected ? 0 : d < draft.length ? 1 : 0) } } : {})
      }
      index++
      if (eos || complete) return
      if (stepEnds) {
        if (draft.length > 0) draftLength = rejected ? Math.max(1, draftLength - 1) : Math.min(speculate, draftLength + 2)
        // positions fed for draft tokens after the one this row checked were computed for nothing
        const keep = position - (draft.length - d)
        if (keep < position && !last) await pipeline.truncate(keep, opts.signal)
        position = keep
        input = [token]
        break
      }
    }
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
