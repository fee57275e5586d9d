// Validation of OpenAI request bodies: every field is checked for type and range, and a bad one
// gets a 400 naming it. Fields OpenAI defines that the swarm cannot honour (n > 1, logprobs,
// echo, tools…) are refused rather than silently ignored; unknown fields are ignored.
// Extensions (as in vLLM): top_k, repetition_penalty, ignore_eos, return_token_ids.
import type { Prompt } from '../client/session.ts'
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
}

export const MAX_STOP_SEQUENCES = 4
export const MAX_STOP_CHARS = 256
const CHAT_ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool'])

export function parseCompletionRequest (body: unknown): ParsedRequest {
  const f = new Fields(body)
  f.refuseUnless('echo', (v) => v === false, 'echo is not supported')
  f.refuseUnless('logprobs', (v) => v === 0, 'logprobs are not supported')
  f.refuseUnless('suffix', (v) => v === '', 'suffix is not supported')
  f.refuseUnless('best_of', (v) => v === 1, 'best_of other than 1 is not supported')
  return { ...common(f), prompt: completionPrompt(f.required('prompt')), params: params(f, 'max_tokens') }
}

export function parseChatRequest (body: unknown): ParsedRequest {
  const f = new Fields(body)
  f.refuseUnless('logprobs', (v) => v === false, 'logprobs are not supported')
  f.refuseUnless('tools', (v) => Array.isArray(v) && v.length === 0, 'tools are not supported')
  f.refuseUnless('response_format', (v) => (v as { type?: unknown }).type === 'text', 'only response_format {"type":"text"} is supported')
  const maxField = f.has('max_completion_tokens') ? 'max_completion_tokens' : 'max_tokens'
  return { ...common(f), prompt: { messages: chatMessages(f.required('messages')) }, params: params(f, maxField) }
}

function common (f: Fields): Omit<ParsedRequest, 'prompt' | 'params'> {
  f.refuseUnless('n', (v) => v === 1, 'n other than 1 is not supported: send one request per completion')
  const stream = f.boolean('stream') ?? false
  const options = f.object('stream_options')
  const includeUsage = options === undefined ? false : new Fields(options, 'stream_options.').boolean('include_usage') ?? false
  return { model: f.string('model'), stream, includeUsage: stream && includeUsage, returnTokenIds: f.boolean('return_token_ids') ?? false }
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
