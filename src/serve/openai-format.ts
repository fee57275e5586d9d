// OpenAI response objects: completions, chat completions, their streamed chunks, usage.
import { randomBytes } from 'node:crypto'

export type FinishReason = 'stop' | 'length'

export interface Usage { prompt_tokens: number, completion_tokens: number, total_tokens: number }

/** What every object of one response shares. */
export interface ResponseMeta {
  id: string
  created: number
  model: string
}

export function newMeta (kind: 'completion' | 'chat', model: string): ResponseMeta {
  return { id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`, created: Math.floor(Date.now() / 1000), model }
}

export function usage (promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens }
}

/** fields of a choice beyond text and finish_reason: its index (default 0), logprobs (default null), token_ids (extension) */
export type ChoiceExtras = { index?: number, logprobs?: object | null, token_ids?: number[] }

export interface Choice { text: string, finish: FinishReason, extras: ChoiceExtras }

export function completionChunk (m: ResponseMeta, text: string, finish: FinishReason | null, extras: ChoiceExtras = {}): object {
  return { id: m.id, object: 'text_completion', created: m.created, model: m.model, choices: [{ text, index: 0, logprobs: null, finish_reason: finish, ...extras }] }
}

export function completionResponse (m: ResponseMeta, choices: Choice[], u: Usage): object {
  return {
    id: m.id,
    object: 'text_completion',
    created: m.created,
    model: m.model,
    choices: choices.map((c) => ({ text: c.text, index: 0, logprobs: null, finish_reason: c.finish, ...c.extras })),
    usage: u
  }
}

export function chatChunk (m: ResponseMeta, delta: { role?: 'assistant', content?: string }, finish: FinishReason | null, extras: ChoiceExtras = {}): object {
  return { id: m.id, object: 'chat.completion.chunk', created: m.created, model: m.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish, ...extras }] }
}

export function chatResponse (m: ResponseMeta, choices: Choice[], u: Usage): object {
  return {
    id: m.id,
    object: 'chat.completion',
    created: m.created,
    model: m.model,
    choices: choices.map((c) => ({ index: 0, message: { role: 'assistant', content: c.text }, logprobs: null, finish_reason: c.finish, ...c.extras })),
    usage: u
  }
}

/** the last chunk of a stream with stream_options.include_usage */
export function usageChunk (kind: 'completion' | 'chat', m: ResponseMeta, u: Usage): object {
  return { id: m.id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: m.created, model: m.model, choices: [], usage: u }
}
