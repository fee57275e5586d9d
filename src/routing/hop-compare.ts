// How far apart two hop outputs are, and how far apart honest peers may be (pure logic).
//
// Honest peers do not agree bit for bit: thread counts change the order of floating-point sums,
// a multi-position replay computes the same positions in other matrix shapes, an f16 wire rounds
// every value to 11 significant bits, and int8/int4 weights are another model up to quantization
// error. The difference is measured per position, relative to that position's largest value
// (hidden states carry a few large outlier dimensions; the largest one sets the scale), and the
// worst position counts. The tolerances below come from measuring that spread
// (scripts/audit-spread.ts; figures in the README's section on verification).

export interface HopDifference {
  /** largest |a − b| over all values */
  maxAbs: number
  /** largest, over positions, of max |a − b| / max |b| within the position */
  rel: number
}

/** `a` against the reference `b`, both (1, n, hiddenSize). Different lengths or a non-finite value in `a`: Infinity. */
export function hopDifference (a: Float32Array, b: Float32Array, hiddenSize: number): HopDifference {
  if (a.length !== b.length || a.length % hiddenSize !== 0) return { maxAbs: Infinity, rel: Infinity }
  let maxAbs = 0
  let rel = 0
  for (let row = 0; row < a.length; row += hiddenSize) {
    let diff = 0
    let scale = 0
    for (let i = row; i < row + hiddenSize; i++) {
      const d = Math.abs(a[i] - b[i])
      if (Number.isNaN(d)) return { maxAbs: Infinity, rel: Infinity }
      if (d > diff) diff = d
      const m = Math.abs(b[i])
      if (m > scale) scale = m
    }
    maxAbs = Math.max(maxAbs, diff)
    rel = Math.max(rel, diff === 0 ? 0 : diff / Math.max(scale, Number.MIN_VALUE))
  }
  return { maxAbs, rel }
}

/**
 * Largest relative difference (see HopDifference.rel) tolerated between two honest peers' outputs
 * of the same hop step, by the weight formats they announce and the wire dtype. Full-precision
 * weights (f32, f16, bf16 checkpoints run in f32) differ only in rounding; a quantized peer is
 * held to its quantization error. Unknown formats get the widest tolerance.
 */
export function auditTolerance (wire: 'f32' | 'f16', formatA: string, formatB: string): number {
  const weights = Math.max(FORMAT_TOLERANCE[formatA] ?? QUANTIZED_WIDEST, FORMAT_TOLERANCE[formatB] ?? QUANTIZED_WIDEST)
  // two quantized peers of the same format compute the same function: rounding only
  const both = formatA === formatB ? ROUNDING : weights
  return Math.max(both, wire === 'f16' ? F16_WIRE : 0)
}

/** full-precision peers: threads 1 vs 2 (measured bit-identical), step by step vs one-step replay (measured ≤ 1.4e-6) */
const ROUNDING = 1e-4
/** f16 wire: values rounded to 11 significant bits (measured ≤ 4.4e-4); one f16 ulp either way ≤ 9.8e-4 */
const F16_WIRE = 2e-3
/** int4 against full precision (measured up to 0.44), and any format strata does not know */
const QUANTIZED_WIDEST = 0.8
const FORMAT_TOLERANCE: Record<string, number> = {
  f32: ROUNDING,
  f16: ROUNDING,
  bf16: ROUNDING,
  /** int8 against full precision (measured up to 4.0e-2) */
  int8: 0.08,
  int4: QUANTIZED_WIDEST
}
