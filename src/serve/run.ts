// One OpenAI request against the swarm: checks it against the model (name, prompt length,
// token ids), runs the generation, applies stop sequences, and records metrics and events.
import { performance } from 'node:perf_hooks'
import { promptIds, type GenerationEvent, type Prompt } from '../client/session.ts'
import type { RouteHop } from '../client/generation.ts'
import type { SwarmGenerateOptions } from '../client/swarm.ts'
import type { ModelConfig } from '../shards/config.ts'
import type { TextTokenizer } from '../shards/tokenizer.ts'
import type { TokenVocabulary } from '../shards/vocabulary.ts'
import type { TokenLogprob } from '../client/logprobs.ts'
import { JsonConstraint, VocabularyTrie } from '../client/json-constraint.ts'
import { ConstraintError } from '../client/constraint.ts'
import type { Logger } from '../routing/logger.ts'
import { ApiError, ClientDisconnectedError, ContextLengthError, InvalidRequestError, ModelNotFoundError, SwarmUnavailableError } from './errors.ts'
import type { EventLog } from './events.ts'
import type { Endpoint, GatewayMetrics } from './metrics.ts'
import type { FinishReason } from './openai-format.ts'
import type { ParsedRequest } from './requests.ts'
import { StopMatcher } from './stop.ts'

/** What the gateway needs of a swarm (a `Swarm` is one). */
export interface Backend {
  readonly modelId: string
  readonly config: Pick<ModelConfig, 'maxPositions' | 'vocabSize'>
  readonly tokenizer: TextTokenizer | null
  /** token bytes (logprobs' token strings, JSON constraints); null without tokenizer.json */
  readonly vocabulary: TokenVocabulary | null
  generate (prompt: Prompt, opts: SwarmGenerateOptions): AsyncGenerator<GenerationEvent>
}

/** completions without max_tokens generate this many, as OpenAI's do */
export const DEFAULT_COMPLETION_TOKENS = 16

export interface PreparedRequest {
  endpoint: Endpoint
  request: ParsedRequest
  ids: number[]
  maxTokens: number
  /** what `echo` returns before the completion */
  promptText: string
  /** the vocabulary trie, when the output is constrained to JSON */
  trie: VocabularyTrie | null
}

const tries = new WeakMap<TokenVocabulary, VocabularyTrie>()

export function prepareRequest (backend: Backend, endpoint: Endpoint, request: ParsedRequest): PreparedRequest {
  if (request.model !== undefined && request.model !== backend.modelId) throw new ModelNotFoundError(request.model, backend.modelId)
  const param = endpoint === 'chat' ? 'messages' : 'prompt'
  if ('messages' in request.prompt && backend.tokenizer?.hasChatTemplate !== true) {
    throw new InvalidRequestError('this model has no chat template (chat_template.jinja, or chat_template in tokenizer_config.json): use /v1/completions', param, 'chat_template_missing')
  }
  let ids: number[]
  try {
    ids = promptIds(backend.tokenizer, request.prompt)
  } catch (err) {
    throw new InvalidRequestError(`could not tokenize the ${param}: ${(err as Error).message}`, param)
  }
  if (ids.length === 0) throw new InvalidRequestError(`the ${param} is empty`, param)
  const { maxPositions, vocabSize } = backend.config
  const bad = ids.find((t) => t >= vocabSize)
  if (bad !== undefined) throw new InvalidRequestError(`token id ${bad} is outside the vocabulary (${vocabSize} tokens)`, param)
  const room = maxPositions - ids.length
  const maxTokens = request.params.maxTokens ?? (endpoint === 'chat' ? room : Math.min(DEFAULT_COMPLETION_TOKENS, room))
  if (maxTokens < 1 || room < maxTokens) throw new ContextLengthError(maxPositions, ids.length, Math.max(maxTokens, 1))
  const format = request.responseFormat
  const vocabulary = backend.vocabulary
  if ((request.logprobs !== null || format.type === 'json') && vocabulary === null) {
    throw new InvalidRequestError('logprobs and JSON output need the model\'s tokenizer.json', request.logprobs !== null ? 'logprobs' : 'response_format')
  }
  let trie: VocabularyTrie | null = null
  if (format.type === 'json') {
    try {
      trie = tries.get(vocabulary!) ?? new VocabularyTrie(vocabulary!)
    } catch (err) {
      if (err instanceof ConstraintError) throw new InvalidRequestError(`response_format: ${err.message}`, 'response_format')
      throw err
    }
    tries.set(vocabulary!, trie)
    const need = new JsonConstraint(trie, format.schema).minTokens
    if (need > maxTokens) {
      throw new InvalidRequestError(`max_tokens ${maxTokens} is too small for the response_format: the shortest valid JSON takes ${need} tokens`, 'max_tokens', 'max_tokens_too_small')
    }
  }
  const promptText = 'text' in request.prompt ? request.prompt.text : 'ids' in request.prompt ? backend.tokenizer?.decode(ids) ?? '' : ''
  return { endpoint, request, ids, maxTokens, promptText, trie }
}

export type RunEvent =
  /** with echo and logprobs, before the first delta: one per prompt token, null for the first */
  | { type: 'prompt', logprobs: Array<TokenLogprob | null> }
  /** logprobs (when asked for) belong to tokenIds, one each */
  | { type: 'delta', text: string, tokenIds: number[], logprobs: TokenLogprob[] }
  | { type: 'end', finishReason: FinishReason, promptTokens: number, completionTokens: number, tokenIds: number[] }

export interface RunContext {
  /** the response id (cmpl-…), also the request's id in events and logs */
  id: string
  /** aborted when the client goes away */
  signal: AbortSignal
  /** when the request arrived (performance.now()) */
  startedAt: number
  metrics: GatewayMetrics
  events: EventLog
  log: Logger
}

/**
 * Streams text deltas (one per generated token; the text may be empty while a multi-byte
 * character or a possible stop sequence is incomplete), then an `end`. Failures are rethrown
 * as ApiError, or ClientDisconnectedError once the client is gone.
 */
export async function * runRequest (backend: Backend, req: PreparedRequest, ctx: RunContext, choice = 0): AsyncGenerator<RunEvent> {
  const { endpoint, ids, request: { params, logprobs, echo, responseFormat } } = req
  const { metrics, events, signal } = ctx
  const stopper = new StopMatcher(params.stop)
  const tokenIds: number[] = []
  let route: RouteHop[] = []
  let reroutes = 0
  let firstTokenMs: number | null = null
  let finishReason: FinishReason = 'length'
  let outcome: { kind: 'ok' | 'error' | 'aborted', error?: string } | null = null
  metrics.active.inc()
  metrics.promptTokens.inc({ endpoint }, ids.length)
  try {
    const generation = backend.generate({ ids }, {
      maxNewTokens: req.maxTokens,
      temperature: params.temperature,
      topP: params.topP,
      topK: params.topK,
      repetitionPenalty: params.repetitionPenalty,
      // choice i samples with seed + i: choice 0 is the n = 1 answer, and every choice is reproducible
      seed: params.seed === undefined ? undefined : (params.seed + choice) >>> 0,
      ignoreEos: params.ignoreEos,
      logprobs: logprobs ?? undefined,
      promptLogprobs: echo && logprobs !== null,
      constraint: responseFormat.type === 'json' ? new JsonConstraint(req.trie!, responseFormat.schema) : undefined,
      signal,
      onReroute: (e) => {
        reroutes++
        metrics.reroutes.inc({ reason: e.reason })
        const entry = events.reroute(ctx.id, e)
        ctx.log.info(entry, 're-routed')
      },
      onAudit: (e) => {
        metrics.audits.inc({ outcome: e.outcome })
        if (e.rel !== undefined) metrics.auditDifference.observe(e.rel)
        if (e.outcome === 'liar' || e.outcome === 'replica_liar') {
          metrics.auditLiars.inc()
          ctx.log.warn({ request: ctx.id, ...e, liar: e.outcome === 'liar' ? e.peer : e.replica }, 'audit caught a peer computing wrong outputs')
        }
      }
    })
    let stopped = false
    let streamed = ''
    for await (const e of generation) {
      if (e.event === 'done') {
        finishReason = e.finishReason
        if (e.speculation !== undefined) {
          metrics.draftTokens.inc({ drafter: e.speculation.drafter, outcome: 'accepted' }, e.speculation.accepted)
          metrics.draftTokens.inc({ drafter: e.speculation.drafter, outcome: 'rejected' }, e.speculation.proposed - e.speculation.accepted)
        }
        // the stream decoder holds back an incomplete UTF-8 sequence; the final text has it
        const tail = e.text.startsWith(streamed) ? e.text.slice(streamed.length) : ''
        const step = stopper.push(tail)
        if (step.text !== '') yield { type: 'delta', text: step.text, tokenIds: [], logprobs: [] }
        if (step.stopped) {
          finishReason = 'stop'
          stopped = true
        }
        continue
      }
      if (firstTokenMs === null) {
        firstTokenMs = performance.now() - ctx.startedAt
        metrics.timeToFirstToken.observe({ endpoint }, firstTokenMs / 1000)
      }
      tokenIds.push(e.token)
      route = e.route
      metrics.generatedTokens.inc({ endpoint })
      streamed += e.text
      const step = stopper.push(e.text)
      if (e.promptLogprobs !== undefined) yield { type: 'prompt', logprobs: e.promptLogprobs }
      yield { type: 'delta', text: step.text, tokenIds: [e.token], logprobs: e.logprob === undefined ? [] : [e.logprob] }
      if (step.stopped) {
        // leaving the loop ends the generation and closes the chain
        finishReason = 'stop'
        stopped = true
        break
      }
    }
    if (!stopped) {
      const rest = stopper.flush()
      if (rest !== '') yield { type: 'delta', text: rest, tokenIds: [], logprobs: [] }
    }
    outcome = { kind: 'ok' }
  } catch (err) {
    const failure = signal.aborted ? new ClientDisconnectedError() : toApiError(err)
    outcome = { kind: failure instanceof ClientDisconnectedError ? 'aborted' : 'error', error: failure.message }
    throw failure
  } finally {
    metrics.active.dec()
    const durationMs = performance.now() - ctx.startedAt
    if (outcome?.kind === 'ok') metrics.latency.observe({ endpoint }, durationMs / 1000)
    const summary = {
      at: new Date().toISOString(),
      id: ctx.id,
      endpoint,
      outcome: outcome?.kind ?? 'aborted',
      promptTokens: ids.length,
      completionTokens: tokenIds.length,
      finishReason: outcome?.kind === 'ok' ? finishReason : null,
      durationMs,
      timeToFirstTokenMs: firstTokenMs,
      route,
      reroutes,
      ...(outcome?.error !== undefined ? { error: outcome.error } : {})
    }
    events.requests.push(summary)
    ctx.log.info(summary, 'request done')
  }
  yield { type: 'end', finishReason, promptTokens: ids.length, completionTokens: tokenIds.length, tokenIds }
}

/** The answer for any error: ApiErrors as they are, programming errors as 500, the rest (swarm failures) as 503. */
export function toApiError (err: unknown): ApiError {
  if (err instanceof ApiError) return err
  const e = err instanceof Error ? err : new Error(String(err))
  switch (e.name) {
    case 'NoRouteError': return new SwarmUnavailableError(`the swarm cannot serve this model right now: ${e.message}`, 'no_route')
    case 'PeerFailure':
    case 'RerouteExhaustedError': return new SwarmUnavailableError(`generation failed in the swarm: ${e.message}`, 'peer_failure')
    case 'GenerationError':
    case 'SamplingError': return new InvalidRequestError(e.message)
    case 'TypeError':
    case 'RangeError':
    case 'ReferenceError': return new ApiError(500, `internal error: ${e.message}`, 'server_error', null, 'internal_error')
    default: return new SwarmUnavailableError(`generation failed in the swarm: ${e.message}`, 'swarm_error')
  }
}
