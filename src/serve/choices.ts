// Several choices per request: each one is its own generation (its own chain of peer sessions,
// its own seed), run concurrently; their events are merged as they come, tagged with the choice
// index. Each choice turns its events into OpenAI choice fields (text, logprobs, token ids).
import type { TokenLogprob } from '../client/logprobs.ts'
import { chatLogprobs, CompletionLogprobsBuilder } from './logprobs-format.ts'
import type { ChoiceExtras, FinishReason } from './openai-format.ts'
import type { PreparedRequest, RunEvent } from './run.ts'
import type { TokenVocabulary } from '../shards/vocabulary.ts'

export interface IndexedEvent { index: number, event: RunEvent }

/**
 * Merges the runs' events in arrival order. When the merge ends early (a failure, the client
 * gone), `stop` is called first (it should abort the runs) and the runs are then returned.
 */
export async function * mergeRuns (runs: Array<AsyncGenerator<RunEvent>>, stop: () => void): AsyncGenerator<IndexedEvent> {
  type Next = { index: number, r: IteratorResult<RunEvent> }
  const pull = (index: number): Promise<Next> => {
    const p = runs[index].next().then((r) => ({ index, r }))
    p.catch(() => {}) // a failure is seen through Promise.race, or not at all once the merge is over
    return p
  }
  const pending = new Map<number, Promise<Next>>(runs.map((_, i) => [i, pull(i)]))
  try {
    while (pending.size > 0) {
      const { index, r } = await Promise.race(pending.values())
      if (r.done === true) {
        pending.delete(index)
        continue
      }
      pending.set(index, pull(index))
      yield { index, event: r.value }
    }
  } finally {
    if (pending.size > 0) stop()
    await Promise.allSettled(runs.map(async (r) => await r.return(undefined)))
  }
}

/** One choice of a response: what its events add to the text and logprobs, streamed or whole. */
export class ChoiceView {
  text = ''
  tokenIds: number[] = []
  finish: FinishReason | null = null
  completionTokens = 0
  private echoed = false
  private readonly completion: CompletionLogprobsBuilder | null
  private readonly chat: TokenLogprob[] = []

  constructor (readonly index: number, private readonly req: PreparedRequest, private readonly vocabulary: TokenVocabulary | null) {
    const { endpoint, request } = req
    this.completion = endpoint === 'completions' && request.logprobs !== null
      ? new CompletionLogprobsBuilder(vocabulary!, request.echo ? 0 : req.promptText.length)
      : null
  }

  /**
   * Applies one event; returns the piece to stream ({text, extras}), or null when there is
   * nothing to send. With echo, the prompt comes first (with its logprobs when asked for).
   */
  apply (e: RunEvent): { text: string, extras: ChoiceExtras } | null {
    const { request } = this.req
    const withLogprobs = request.logprobs !== null
    if (e.type === 'end') {
      this.finish = e.finishReason
      this.completionTokens = e.completionTokens
      return null
    }
    if (e.type === 'prompt') {
      this.echoed = true
      this.text += this.req.promptText
      return { text: this.req.promptText, extras: { index: this.index, logprobs: this.completion?.add(this.req.ids, e.logprobs) ?? null } }
    }
    let prefix = ''
    if (request.echo && !this.echoed) {
      this.echoed = true
      prefix = this.req.promptText
    }
    this.text += prefix + e.text
    this.tokenIds.push(...e.tokenIds)
    let logprobs: object | null = null
    if (withLogprobs && e.logprobs.length > 0) {
      if (this.completion !== null) logprobs = this.completion.add(e.tokenIds, e.logprobs)
      else {
        this.chat.push(...e.logprobs)
        logprobs = chatLogprobs(this.vocabulary!, e.logprobs)
      }
    }
    const text = prefix + e.text
    if (text === '' && logprobs === null && !(request.returnTokenIds && e.tokenIds.length > 0)) return null
    return { text, extras: { index: this.index, logprobs, ...(request.returnTokenIds ? { token_ids: e.tokenIds } : {}) } }
  }

  /** the choice's fields in a whole (non-streamed) response */
  extras (): ChoiceExtras {
    const logprobs = this.req.request.logprobs === null ? null : this.completion !== null ? this.completion.all : chatLogprobs(this.vocabulary!, this.chat)
    return { index: this.index, logprobs, ...(this.req.request.returnTokenIds ? { token_ids: this.tokenIds } : {}) }
  }
}
