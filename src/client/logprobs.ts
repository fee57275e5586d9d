// Log-probabilities of tokens under the model's next-token distribution (log-softmax of the raw
// logits, before temperature, penalties or constraints: what evaluation harnesses score).

/** the most alternatives a response may ask for per position (OpenAI allows 20) */
export const MAX_TOP_LOGPROBS = 20

export interface TopLogprob { token: number, logprob: number }

export interface TokenLogprob {
  token: number
  logprob: number
  /** the most likely tokens at this position, most likely first (empty unless asked for) */
  top: TopLogprob[]
}

/**
 * The log-probability of `token` in the logits row `row` of `logits` (rows of `vocab`), with the
 * `topK` most likely tokens; ties go to the lower id.
 */
export function tokenLogprob (logits: Float32Array, vocab: number, row: number, token: number, topK = 0): TokenLogprob {
  const x = logits.subarray(row * vocab, (row + 1) * vocab)
  if (x.length !== vocab) throw new RangeError(`logits row ${row} is outside ${logits.length / vocab} rows`)
  let max = -Infinity
  for (let i = 0; i < vocab; i++) if (x[i] > max) max = x[i]
  let sum = 0
  for (let i = 0; i < vocab; i++) sum += Math.exp(x[i] - max)
  const lse = max + Math.log(sum)
  return { token, logprob: x[token] - lse, top: topTokens(x, topK).map((t) => ({ token: t, logprob: x[t] - lse })) }
}

/** The k largest entries, largest first (a small insertion-sorted list: k ≤ MAX_TOP_LOGPROBS). */
function topTokens (x: Float32Array, k: number): number[] {
  const top: number[] = []
  if (k <= 0) return top
  for (let i = 0; i < x.length; i++) {
    if (top.length === k && x[i] <= x[top[k - 1]]) continue
    let j = Math.min(top.length, k - 1)
    while (j > 0 && x[top[j - 1]] < x[i]) j--
    top.splice(j, 0, i)
    if (top.length > k) top.pop()
  }
  return top
}
