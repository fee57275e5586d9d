// Rotary position embedding tables (cos/sin caches) in the "rotate half" layout Llama uses.
import type { ModelConfig } from './config.ts'

/** Inverse frequencies per rotary pair, with the config's rope scaling applied. (headDim/2) */
export function inverseFrequencies (cfg: ModelConfig): Float64Array {
  const half = cfg.headDim / 2
  const inv = new Float64Array(half)
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(cfg.ropeTheta, (2 * i) / cfg.headDim)
  const s = cfg.ropeScaling
  if (s.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] /= s.factor
  } else if (s.type === 'llama3') {
    // Meta's llama3 scaling: long wavelengths are divided by `factor`, short ones kept,
    // the band between interpolated smoothly.
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor
    const highWavelen = s.originalMaxPositions / s.highFreqFactor
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i]
      if (wavelen > lowWavelen) inv[i] /= s.factor
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
        inv[i] = (1 - smooth) * inv[i] / s.factor + smooth * inv[i]
      }
    }
  }
  return inv
}

/** cos and sin caches, each (maxPositions, headDim/2), row p = position p. */
export function rotaryCaches (cfg: ModelConfig): { cos: Float32Array, sin: Float32Array } {
  const half = cfg.headDim / 2
  const inv = inverseFrequencies(cfg)
  const cos = new Float32Array(cfg.maxPositions * half)
  const sin = new Float32Array(cfg.maxPositions * half)
  for (let p = 0; p < cfg.maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * inv[i]
      cos[p * half + i] = Math.cos(angle)
      sin[p * half + i] = Math.sin(angle)
    }
  }
  return { cos, sin }
}
