// Drafting for speculative decoding. A drafter proposes tokens to follow the sequence so far;
// verification decides. Prompt lookup (here) searches the tokens so far (prompt + generated) for
// an earlier occurrence of their last n-gram, longest n first, most recent match first; the
// tokens that followed it are the draft. It costs no model and shines on repetitive text
// (editing or quoting a given code block, structured output). A draft model (draft-model.ts)
// proposes what a small local model would generate.

/** Proposes draft tokens; verification by the model decides which are kept. */
export interface Drafter {
  /** what drafts, as reported in a generation's summary */
  readonly kind: 'prompt-lookup' | 'model'
  /** up to `k` tokens proposed to follow `seen` (prompt + tokens generated so far) */
  propose: (seen: readonly number[], k: number, signal?: AbortSignal) => Promise<number[]>
}

/** prompt lookup as a Drafter */
export const promptLookup: Drafter = {
  kind: 'prompt-lookup',
  propose: async (seen, k) => promptLookupDraft(seen, k)
}

/** longest n-gram tried first */
export const MAX_NGRAM = 3

/**
 * Up to `k` tokens proposed to follow `tokens`, from the most recent earlier occurrence of their
 * last n-gram (n = MAX_NGRAM down to 1); [] when nothing repeats. A match near the end repeats
 * periodically: after `a b c a b`, the draft for k = 4 is `c a b c`.
 */
export function promptLookupDraft (tokens: readonly number[], k: number): number[] {
  const len = tokens.length
  if (k <= 0) return []
  for (let n = Math.min(MAX_NGRAM, len - 1); n >= 1; n--) {
    // candidate starts s of an earlier copy of tokens[len - n, len): s + n < len
    for (let s = len - n - 1; s >= 0; s--) {
      let match = true
      for (let j = 0; j < n; j++) {
        if (tokens[s + j] !== tokens[len - n + j]) { match = false; break }
      }
      if (match) {
        // copy what followed; running into the end, keep copying the draft itself (a repeating
        // pattern whose period is shorter than k continues past the end)
        const draft: number[] = []
        for (let i = 0; i < k; i++) draft.push(s + n + i < len ? tokens[s + n + i] : draft[s + n + i - len])
        return draft
      }
    }
  }
  return []
}
