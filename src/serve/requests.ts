// Validation of OpenAI request bodies: every field is checked for type and range, and a bad one
// gets a 400 naming it. Fields OpenAI defines that the swarm cannot honour (tools, suffix,
// best_of…) are refused rather than silently ignored; unknown fields are ignored.
// Extensions (as in vLLM): top_k, repetition_penalty, ignore_eos, return_token_ids; response_format
// on completions too.
import type { Prompt } from '../client/session.ts'
import { MAX_TOP_LOGPROBS } from '../client/logprobs.ts'
import { ANY_OBJECT, parseJsonSchema, SchemaError, type SchemaNode } from '../client/json-schema.ts'
import type { ChatMessage } from '../shards/tokenizer.ts'
import { InvalidRequestError } from './errors.ts'

export interface GenerationParams {
  /** undefined: the endpoint's default (completions 16, chat: the rest of the context) */
  maxTokens?: number
  temperature: number
  topP: number
  topK: number
  repetitionPenalty: number
  seed?: number
  stop: string[]
  ignoreEos: boolean
}

export interface ParsedRequest {
  model?: string
  prompt: Prompt
  stream: boolean
  /** stream_options.include_usage: a last chunk carrying `usage` */
  includeUsage: boolean
  /** add the generated token ids to every choice (`token_ids`) */
  returnTokenIds: boolean
  params: GenerationParams
  /** choices to generate, each sampled with its own seed */
  n: number
  /** log-probabilities of the chosen tokens with this many alternatives each; null: none */
  logprobs: number | null
  /** completions: the prompt comes back before the completion, with its log-probabilities when asked */
  echo: boolean
  /** json: the output is constrained to JSON matching the schema */
  responseFormat: { type: 'text' } | { type: 'json', schema: SchemaNode }
}

export const MAX_STOP_SEQUENCES = 4
/** choices per request at most */
export const MAX_CHOICES = 8
export const MAX_STOP_CHARS = 256
const CHAT_ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool'])

export function parseCompletionRequest (body: unknown): ParsedRequest {
  const f = new Fields(body)
  f.refuseUnless('suffix', (v) => v === '', 'suffix is not supported')
  const logprobs = f.integer('logprobs', 0, MAX_TOP_LOGPROBS) ?? null
  const c = common(f)
  f.refuseUnless('best_of', (v) => v === 1 || v === c.n, 'best_of other than n is not supported')
  return { ...c, prompt: completionPrompt(f.required('prompt')), params: checkStop(params(f, 'max_tokens'), c), logprobs, echo: f.boolean('echo') ?? false }
}

export function parseChatRequest (body: unknown): ParsedRequest {
  const f = new Fields(body)
  f.refuseUnless('tools', (v) => Array.isArray(v) && v.length === 0, 'tools are not supported')
  const wanted = f.boolean('logprobs') ?? false
  const top = f.integer('top_logprobs', 0, MAX_TOP_LOGPROBS)
  if (top !== undefined && !wanted) throw new InvalidRequestError('top_logprobs needs logprobs: true', 'top_logprobs')
  const maxField = f.has('max_completion_tokens') ? 'max_completion_tokens' : 'max_tokens'
  const c = common(f)
  return { ...c, prompt: { messages: chatMessages(f.required('messages')) }, params: checkStop(params(f, maxField), c), logprobs: wanted ? top ?? 0 : null, echo: false }
}

function common (f: Fields): Omit<ParsedRequest, 'prompt' | 'params' | 'logprobs' | 'echo'> {
  const n = f.integer('n', 1, MAX_CHOICES) ?? 1
  const stream = f.boolean('stream') ?? false
  const options = f.object('stream_options')
  const includeUsage = options === undefined ? false : new Fields(options, 'stream_options.').boolean('include_usage') ?? false
  return { model: f.string('model'), stream, includeUsage: stream && includeUsage, returnTokenIds: f.boolean('return_token_ids') ?? false, n, responseFormat: responseFormat(f.object('response_format')) }
}

/** {"type":"text"} | {"type":"json_object"} | {"type":"json_schema","json_schema":{"name":…,"schema":{…}}} */
function responseFormat (v: object | undefined): ParsedRequest['responseFormat'] {
  if (v === undefined) return { type: 'text' }
  const f = new Fields(v, 'response_format.')
  const type = f.required('type')
  if (type === 'text') return { type: 'text' }
  if (type === 'json_object') return { type: 'json', schema: ANY_OBJECT }
  if (type !== 'json_schema') throw new InvalidRequestError('response_format.type must be text, json_object or json_schema', 'response_format.type')
  const spec = new Fields(f.object('json_schema') ?? f.required('json_schema'), 'response_format.json_schema.')
  spec.string('name')
  try {
    return { type: 'json', schema: parseJsonSchema(spec.required('schema')) }
  } catch (err) {
    if (err instanceof SchemaError) throw new InvalidRequestError(`response_format.json_schema.schema: ${err.message}`, 'response_format.json_schema.schema', 'unsupported_schema')
    throw err
  }
}

/** Stop sequences could cut a JSON document short: they do not go with a JSON response format. */
function checkStop (p: GenerationParams, c: { responseFormat: ParsedRequest['responseFormat'] }): GenerationParams {
  if (p.stop.length > 0 && c.responseFormat.type === 'json') throw new InvalidRequestError('stop sequences cannot be combined with a JSON response_format: they could cut the document short', 'stop')
  return p
}

function params (f: Fields, maxField: string): GenerationParams {
  const maxTokens = f.integer(maxField, 1)
  let temperature = f.number('temperature', 0, 2) ?? 1
  let topP = f.number('top_p', 0, 1) ?? 1
  // top_p 0 keeps only the most likely token: greedy
  if (topP === 0) { temperature = 0; topP = 1 }
  const topK = f.integer('top_k', -1) ?? 0
  const seed = f.integer('seed', Number.MIN_SAFE_INTEGER)
  return {
    maxTokens,
    temperature,
    topP,
    topK: Math.max(topK, 0),
    repetitionPenalty: f.number('repetition_penalty', Number.MIN_VALUE, 100) ?? 1,
    seed: seed === undefined ? undefined : seed >>> 0,
    stop: stopSequences(f.optional('stop')),
    ignoreEos: f.boolean('ignore_eos') ?? false
  }
}

function completionPrompt (v: unknown): Prompt {
  if (typeof v === 'string') return { text: v }
  if (!Array.isArray(v) || v.length === 0) throw new InvalidRequestError('prompt must be a string or a non-empty array of token ids', 'prompt')
  if (v.every((t) => typeof t === 'number')) return { ids: tokenIds(v) }
  if (v.length > 1) throw new InvalidRequestError('several prompts in one request are not supported: send one request per prompt', 'prompt')
  return completionPrompt(v[0])
}

function tokenIds (v: unknown[]): number[] {
  if (!v.every((t) => Number.isSafeInteger(t) && (t as number) >= 0)) throw new InvalidRequestError('prompt token ids must be non-negative integers', 'prompt')
  return v as number[]
}

function chatMessages (v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new InvalidRequestError('messages must be a non-empty array', 'messages')
  return v.map((m, i) => {
    const f = new Fields(m, `messages[${i}].`)
    const role = f.required('role')
    if (typeof role !== 'string' || !CHAT_ROLES.has(role)) throw new InvalidRequestError(`messages[${i}].role must be one of ${[...CHAT_ROLES].join(', ')}`, `messages[${i}].role`)
    return { role: role === 'developer' ? 'system' : role, content: messageContent(f.required('content'), i) }
  })
}

function messageContent (v: unknown, i: number): string {
  if (typeof v === 'string') return v
  const param = `messages[${i}].content`
  if (!Array.isArray(v)) throw new InvalidRequestError(`${param} must be a string or an array of text parts`, param)
  return v.map((part, j) => {
    const p = part as { type?: unknown, text?: unknown } | null
    if (p === null || typeof p !== 'object' || p.type !== 'text' || typeof p.text !== 'string') {
      throw new InvalidRequestError(`${param}[${j}] must be {"type":"text","text":…}: only text is supported`, `${param}[${j}]`)
    }
    return p.text
  }).join('')
}

function stopSequences (v: unknown): string[] {
  if (v === undefined) return []
  const list = typeof v === 'string' ? [v] : v
  if (!Array.isArray(list) || list.length > MAX_STOP_SEQUENCES || !list.every((s) => typeof s === 'string' && s.length > 0 && s.length <= MAX_STOP_CHARS)) {
    throw new InvalidRequestError(`stop must be a string or an array of at most ${MAX_STOP_SEQUENCES} non-empty strings of at most ${MAX_STOP_CHARS} characters`, 'stop')
  }
  return list
}

/** Typed access to the fields of a JSON object; null counts as absent, as in OpenAI's API. */
class Fields {
  private readonly obj: Record<string, unknown>

  constructor (value: unknown, private readonly prefix = '') {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new InvalidRequestError(prefix === '' ? 'the request body must be a JSON object' : `${prefix.slice(0, -1)} must be an object`, prefix === '' ? null : prefix.slice(0, -1))
    }
    this.obj = value as Record<string, unknown>
  }

  has (name: string): boolean {
    return this.optional(name) !== undefined
  }

  optional (name: string): unknown {
    const v = Object.hasOwn(this.obj, name) ? this.obj[name] : undefined
    return v === null ? undefined : v
  }

  required (name: string): unknown {
    const v = this.optional(name)
    if (v === undefined) throw new InvalidRequestError(`missing required parameter: '${this.prefix}${name}'`, this.prefix + name, 'missing_required_parameter')
    return v
  }

  string (name: string): string | undefined {
    return this.typed(name, 'string', (v): v is string => typeof v === 'string')
  }

  boolean (name: string): boolean | undefined {
    return this.typed(name, 'boolean', (v): v is boolean => typeof v === 'boolean')
  }

  object (name: string): object | undefined {
    return this.typed(name, 'object', (v): v is object => typeof v === 'object' && !Array.isArray(v))
  }

  number (name: string, min: number, max = Number.MAX_VALUE): number | undefined {
    const v = this.typed(name, 'number', (x): x is number => typeof x === 'number' && Number.isFinite(x))
    if (v !== undefined && (v < min || v > max)) throw this.invalid(name, `must be between ${min} and ${max}, got ${v}`)
    return v
  }

  integer (name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const v = this.typed(name, 'integer', (x): x is number => Number.isSafeInteger(x))
    if (v !== undefined && (v < min || v > max)) throw this.invalid(name, `must be an integer ≥ ${min}${max < Number.MAX_SAFE_INTEGER ? ` and ≤ ${max}` : ''}, got ${v}`)
    return v
  }

  /** refuses a present field unless `ok` says its value is the harmless default */
  refuseUnless (name: string, ok: (v: unknown) => boolean, message: string): void {
    const v = this.optional(name)
    if (v !== undefined && !ok(v)) throw new InvalidRequestError(message, this.prefix + name, 'unsupported_parameter')
  }

  private typed<T> (name: string, what: string, is: (v: unknown) => v is T): T | undefined {
    const v = this.optional(name)
    if (v === undefined) return undefined
    if (!is(v)) throw this.invalid(name, `must be ${/^[aeiou]/.test(what) ? 'an' : 'a'} ${what}, got ${JSON.stringify(v)?.slice(0, 40) ?? typeof v}`)
    return v
  }

  private invalid (name: string, detail: string): InvalidRequestError {
    return new InvalidRequestError(`${this.prefix}${name} ${detail}`, this.prefix + name)
  }
}
