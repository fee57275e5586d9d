// Log-probabilities in OpenAI's response shapes: completions' parallel lists (tokens,
// token_logprobs, top_logprobs, text_offset) and chat's content entries (token, logprob, bytes,
// top_logprobs). Token strings come from the vocabulary's bytes (see TokenVocabulary.text).
import type { TokenLogprob } from '../client/logprobs.ts'
import type { TokenVocabulary } from '../shards/vocabulary.ts'

export interface CompletionLogprobs {
  tokens: string[]
  token_logprobs: Array<number | null>
  top_logprobs: Array<Record<string, number> | null>
  text_offset: number[]
}

export interface ChatLogprobEntry { token: string, logprob: number, bytes: number[] | null, top_logprobs: Array<{ token: string, logprob: number, bytes: number[] | null }> }
export interface ChatLogprobs { content: ChatLogprobEntry[], refusal: null }

/**
 * One choice's completions logprobs, built piece by piece as tokens arrive. `text_offset` counts
 * characters of the returned text: a token advances it by the characters its bytes complete
 * (special tokens by none).
 */
export class CompletionLogprobsBuilder {
  private readonly decoder = new TextDecoder()
  readonly all: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] }

  constructor (private readonly vocabulary: TokenVocabulary, private offset: number) {}

  /** the entries for `tokens` (each with its logprob, or null for the first prompt token); also kept in `all` */
  add (tokens: readonly number[], logprobs: ReadonlyArray<TokenLogprob | null>): CompletionLogprobs {
    const part: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] }
    tokens.forEach((t, i) => {
      const lp = logprobs[i]
      part.tokens.push(this.vocabulary.text(t))
      part.token_logprobs.push(lp === null ? null : lp.logprob)
      part.top_logprobs.push(lp === null ? null : this.topMap(lp))
      part.text_offset.push(this.offset)
      const bytes = this.vocabulary.bytes(t)
      if (bytes !== null) this.offset += this.decoder.decode(bytes, { stream: true }).length
    })
    for (const k of Object.keys(part) as Array<keyof CompletionLogprobs>) (this.all[k] as unknown[]).push(...part[k])
    return part
  }

  /** the alternatives, most likely first, plus the chosen token (as OpenAI: up to k + 1 entries) */
  private topMap (lp: TokenLogprob): Record<string, number> {
    const out: Record<string, number> = {}
    for (const t of lp.top) {
      const s = this.vocabulary.text(t.token)
      if (!(s in out)) out[s] = t.logprob
    }
    if (lp.top.length > 0) {
      const s = this.vocabulary.text(lp.token)
      if (!(s in out)) out[s] = lp.logprob
    }
    return out
  }
}

export function chatLogprobs (vocabulary: TokenVocabulary, logprobs: readonly TokenLogprob[]): ChatLogprobs {
  const entry = (token: number, logprob: number): { token: string, logprob: number, bytes: number[] } =>
    ({ token: vocabulary.text(token), logprob, bytes: vocabulary.textBytes(token) })
  return { content: logprobs.map((lp) => ({ ...entry(lp.token, lp.logprob), top_logprobs: lp.top.map((t) => entry(t.token, t.logprob)) })), refusal: null }
}
