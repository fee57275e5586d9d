// Next-token selection: greedy, or temperature / top-k / top-p sampling with a seeded PRNG,
// plus a repetition penalty (CTRL-style, as in Hugging Face transformers).

export interface SamplingOptions {
  /** 0 = greedy (default) */
  temperature?: number
  /** keep the k most likely tokens; 0 = off (default) */
  topK?: number
  /** nucleus sampling mass in (0, 1]; 1 = off (default) */
  topP?: number
  /** > 1 discourages tokens already present; 1 = off (default) */
  repetitionPenalty?: number
  /** PRNG seed for sampling (default: random) */
  seed?: number
}

export class SamplingError extends RangeError {
  override name = 'SamplingError'
}

export function validateSampling (o: SamplingOptions): void {
  if (o.temperature !== undefined && !(o.temperature >= 0 && Number.isFinite(o.temperature))) throw new SamplingError(`temperature must be ≥ 0, got ${o.temperature}`)
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) throw new SamplingError(`top-k must be a non-negative integer, got ${o.topK}`)
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new SamplingError(`top-p must be in (0, 1], got ${o.topP}`)
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0 && Number.isFinite(o.repetitionPenalty))) throw new SamplingError(`repetition penalty must be > 0, got ${o.repetitionPenalty}`)
}

export class Sampler {
  private readonly rand: () => number

  constructor (private readonly o: SamplingOptions = {}) {
    validateSampling(o)
    this.rand = mulberry32(o.seed ?? Math.floor(Math.random() * 2 ** 32))
  }

  /** Picks the next token from `logits` given the tokens seen so far (prompt + generated). */
  next (logits: Float32Array, seen: readonly number[]): number {
    const scores = Float64Array.from(logits)
    const penalty = this.o.repetitionPenalty ?? 1
    if (penalty !== 1) {
      for (const t of new Set(seen)) if (t >= 0 && t < scores.length) scores[t] = scores[t] > 0 ? scores[t] / penalty : scores[t] * penalty
    }
    const temperature = this.o.temperature ?? 0
    if (temperature === 0) return argmax(scores)

    // tokens at -∞ (masked by a constraint) are never candidates
    let candidates = Array.from(scores.keys()).filter((t) => scores[t] > -Infinity).sort((a, b) => scores[b] - scores[a] || a - b)
    const topK = this.o.topK ?? 0
    if (topK > 0) candidates = candidates.slice(0, topK)
    const max = scores[candidates[0]]
    let probs = candidates.map((t) => Math.exp((scores[t] - max) / temperature))
    let z = probs.reduce((a, b) => a + b, 0)
    probs = probs.map((p) => p / z)
    const topP = this.o.topP ?? 1
    if (topP < 1) {
      let mass = 0
      let keep = 0
      while (keep < probs.length && mass < topP) mass += probs[keep++]
      candidates = candidates.slice(0, keep)
      probs = probs.slice(0, keep)
      z = probs.reduce((a, b) => a + b, 0)
      probs = probs.map((p) => p / z)
    }
    let r = this.rand()
    for (let i = 0; i < probs.length; i++) {
      r -= probs[i]
      if (r < 0) return candidates[i]
    }
    return candidates[candidates.length - 1]
  }
}

/** Index of the largest score; the lowest index wins ties (deterministic). */
export function argmax (scores: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i
  return best
}

function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
