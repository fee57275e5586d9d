// One generation from prompt to done, over any BlockPipeline: tokenization, the token loop,
// streaming text and the final summary. Shared by the CLI, the SDK and the HTTP gateway.
import type { TextTokenizer, ChatMessage } from '../shards/tokenizer.ts'
import type { TokenLogprob } from './logprobs.ts'
import type { AuditStats } from '../routing/index.ts'
import { generateTokens, GenerationError, type BlockPipeline, type GenerateOptions, type Head, type RouteHop } from './generation.ts'

export type Prompt = { text: string } | { ids: number[] } | { messages: ChatMessage[] }

export interface TokenOutput {
  event: 'token'
  index: number
  token: number
  text: string
  route: RouteHop[]
  /** with the `logprobs` option */
  logprob?: TokenLogprob
  /** with the `promptLogprobs` option, on the first token only: null for the first prompt token */
  promptLogprobs?: Array<TokenLogprob | null>
}
export interface DoneOutput {
  event: 'done'
  tokens: number[]
  text: string
  reroutes: number
  /** new tokens per second of wall time, prefill included */
  tokensPerSecond: number
  promptTokens: number
  finishReason: 'stop' | 'length'
  /** time to the first token, ms (prefill + first step) */
  timeToFirstTokenMs: number
  /** swarm only: each re-route, in order */
  rerouteLog?: RerouteSummary[]
  /** swarm with verification only: hop steps whose outputs matched the local recomputation */
  verifiedSteps?: number
  /** swarm with verification or audits only: peers whose outputs did not match, routed around */
  rejectedPeers?: string[]
  /** swarm with audits only: this generation's replica cross-checks */
  audit?: AuditStats
  /** swarm only: how the client reached each peer of the last route at the end */
  paths?: Array<{ peer: string, path: 'direct' | 'relayed' }>
  /** with the `speculate` option */
  speculation?: SpeculationSummary
}
/** How speculative decoding went over one generation. */
export interface SpeculationSummary {
  /** draft tokens per step at most (the `speculate` option) */
  draftTokens: number
  /** who drafted: prompt lookup, or a local draft model */
  drafter: 'prompt-lookup' | 'model'
  /** steps after the prefill that verified a draft */
  verifySteps: number
  /** draft tokens fed for verification */
  proposed: number
  /** draft tokens the model agreed with */
  accepted: number
  /** accepted / proposed (0 when nothing was proposed) */
  acceptanceRate: number
}
export interface RerouteSummary { failedPeer: string, reason: string, start: number, end: number, recoveryMs: number, replacement: RouteHop[] }
export type GenerationEvent = TokenOutput | DoneOutput

export function promptIds (tokenizer: TextTokenizer | null, prompt: Prompt): number[] {
  if ('ids' in prompt) return prompt.ids
  if (tokenizer === null) throw new GenerationError('the model has no tokenizer.json: pass token ids instead of text')
  if ('messages' in prompt) return tokenizer.encodeChat(prompt.messages)
  return tokenizer.encode(prompt.text)
}

export async function * runGeneration (head: Head, pipeline: BlockPipeline, tokenizer: TextTokenizer | null, prompt: Prompt, opts: GenerateOptions): AsyncGenerator<GenerationEvent> {
  const ids = promptIds(tokenizer, prompt)
  const decode = tokenizer?.streamDecoder() ?? null
  const tokens: number[] = []
  const t0 = performance.now()
  let firstTokenMs = 0
  const isStop = (token: number): boolean => opts.ignoreEos !== true && head.config.eosTokenIds.includes(token)
  let stopped = false
  const spec = { verifySteps: 0, proposed: 0, accepted: 0 }
  for await (const { last, draft, ...e } of generateTokens(head, pipeline, ids, opts)) {
    if (draft !== undefined) {
      spec.verifySteps++
      spec.proposed += draft.proposed
      spec.accepted += draft.accepted
    }
    if (tokens.length === 0) firstTokenMs = performance.now() - t0
    tokens.push(e.token)
    stopped = last && isStop(e.token)
    // the token that stops generation is never printed (whether or not the tokenizer marks it
    // special); the last token also releases what the decoder still holds, so the texts add up
    // to done.text
    const text = decode === null ? '' : (stopped ? '' : decode.push(e.token)) + (last ? decode.flush() : '')
    yield { ...e, text }
  }
  const seconds = (performance.now() - t0) / 1000
  yield {
    event: 'done',
    tokens,
    text: tokenizer === null ? '' : tokenizer.decode(stopped ? tokens.slice(0, -1) : tokens),
    reroutes: pipeline.reroutes,
    tokensPerSecond: seconds > 0 ? tokens.length / seconds : 0,
    promptTokens: ids.length,
    finishReason: stopped || opts.constraint?.complete === true ? 'stop' : 'length',
    timeToFirstTokenMs: firstTokenMs,
    ...((opts.speculate ?? 0) > 0 ? { speculation: { draftTokens: opts.speculate ?? 0, drafter: opts.drafter?.kind ?? 'prompt-lookup', ...spec, acceptanceRate: spec.proposed > 0 ? spec.accepted / spec.proposed : 0 } } : {})
  }
}
