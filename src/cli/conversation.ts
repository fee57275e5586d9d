// The conversation `strata generate` sends through the chat template: --messages FILE.json (a
// JSON array of {role, content}, or an object with such a "messages" array), then --system and
// --prompt (as the last user turn). Any problem names the file and the message.
import { readFileSync } from 'node:fs'
import type { ChatMessage } from '../shards/tokenizer.ts'

export class ConversationError extends Error {
  override name = 'ConversationError'
}

export interface ConversationFlags {
  messages?: string
  system?: string
  prompt?: string
}

export function buildConversation (o: ConversationFlags): ChatMessage[] {
  const messages = o.messages === undefined ? [] : readConversation(o.messages)
  if (o.system !== undefined) {
    if (messages[0]?.role === 'system') throw new ConversationError(`--system: ${o.messages} already starts with a system message`)
    messages.unshift({ role: 'system', content: o.system })
  }
  if (o.prompt !== undefined) messages.push({ role: 'user', content: o.prompt })
  if (!messages.some((m) => m.role !== 'system')) throw new ConversationError('the conversation has no user message: give --prompt or --messages FILE.json')
  return messages
}

function readConversation (file: string): ChatMessage[] {
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new ConversationError(`--messages ${file}: ${(err as Error).message}`)
  }
  const list = Array.isArray(raw) ? raw : (raw as { messages?: unknown } | null)?.messages
  if (!Array.isArray(list) || list.length === 0) throw new ConversationError(`--messages ${file}: expected a non-empty JSON array of {"role", "content"} (or {"messages": [...]})`)
  return list.map((m: unknown, i) => {
    const msg = m as { role?: unknown, content?: unknown } | null
    if (msg === null || typeof msg !== 'object' || typeof msg.role !== 'string' || msg.role === '') {
      throw new ConversationError(`--messages ${file}: messages[${i}].role must be a non-empty string`)
    }
    if (typeof msg.content !== 'string') throw new ConversationError(`--messages ${file}: messages[${i}].content must be a string`)
    return { role: msg.role, content: msg.content }
  })
}
