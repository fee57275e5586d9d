// Rotary-embedding parameters from either config.json generation:
//   older:            "rope_theta": 500000, "rope_scaling": { "rope_type": "llama3", "factor": 8, … } | null
//   transformers ≥ 5: "rope_parameters": { "rope_theta": 500000, "rope_type": "llama3", "factor": 8, … }
// Types implemented: default, linear, llama3 (as transformers' modeling_rope_utils computes them).
// dynamic, yarn, longrope and anything else are refused by name; so is any key inside the
// rope dict that the type does not use.
import { ModelConfigError } from './errors.ts'

export type RopeScaling =
  | { type: 'none' }
  | { type: 'linear', factor: number }
  | { type: 'llama3', factor: number, lowFreqFactor: number, highFreqFactor: number, originalMaxPositions: number }

export interface RopeParams {
  theta: number
  scaling: RopeScaling
}

/** keys each rope type reads from the rope dict (besides rope_type/type, rope_theta, partial_rotary_factor) */
const TYPE_KEYS: Record<string, readonly string[]> = {
  default: [],
  linear: ['factor'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings']
}

const REFUSED_TYPES: Record<string, string> = {
  dynamic: 'dynamic NTK scaling changes the frequencies with the sequence length',
  yarn: 'YaRN scaling is not implemented',
  longrope: 'LongRoPE scaling is not implemented',
  su: 'LongRoPE ("su") scaling is not implemented',
  proportional: 'proportional rope is not implemented'
}

const DEFAULT_THETA = 10000

export function parseRope (c: Record<string, unknown>, maxPositions: number): RopeParams {
  const params = c.rope_parameters
  const scaling = c.rope_scaling
  let dict: Record<string, unknown> | null
  let field: string
  let theta: number
  if (params !== undefined && params !== null) {
    // transformers ≥ 5
    if (scaling !== undefined && scaling !== null) throw new ModelConfigError('rope_scaling', 'given together with rope_parameters: keep one of them')
    dict = object(params, 'rope_parameters')
    field = 'rope_parameters'
    theta = dict.rope_theta === undefined ? topTheta(c) : positive(dict, 'rope_theta', 'rope_parameters.rope_theta')
    if (c.rope_theta !== undefined && c.rope_theta !== null && c.rope_theta !== theta) {
      throw new ModelConfigError('rope_theta', `${JSON.stringify(c.rope_theta)} contradicts rope_parameters.rope_theta ${theta}`)
    }
  } else {
    dict = scaling === undefined || scaling === null ? null : object(scaling, 'rope_scaling')
    field = 'rope_scaling'
    theta = topTheta(c)
    if (dict?.rope_theta !== undefined && dict.rope_theta !== theta) {
      throw new ModelConfigError('rope_scaling.rope_theta', `${JSON.stringify(dict.rope_theta)} contradicts rope_theta ${theta}`)
    }
  }
  if (dict === null) return { theta, scaling: { type: 'none' } }

  const type = dict.rope_type ?? dict.type ?? 'default'
  if (typeof type !== 'string') throw new ModelConfigError(`${field}.rope_type`, `must be a string, got ${JSON.stringify(type)}`)
  if (dict.rope_type !== undefined && dict.type !== undefined && dict.rope_type !== dict.type) {
    throw new ModelConfigError(`${field}.type`, `"${String(dict.type)}" contradicts rope_type "${type}"`)
  }
  const used = TYPE_KEYS[type]
  if (used === undefined) {
    const why = REFUSED_TYPES[type] ?? 'unknown rope type'
    throw new ModelConfigError(`${field}.rope_type`, `"${type}" is not supported: ${why} (supported: ${Object.keys(TYPE_KEYS).join(', ')})`)
  }
  for (const key of Object.keys(dict)) {
    if (key === 'rope_type' || key === 'type' || key === 'rope_theta' || used.includes(key)) continue
    if (key === 'partial_rotary_factor') {
      if (dict[key] !== 1) throw new ModelConfigError(`${field}.partial_rotary_factor`, `${JSON.stringify(dict[key])} is not supported (only 1)`)
      continue
    }
    throw new ModelConfigError(`${field}.${key}`, `not used by rope type "${type}": refusing to guess what it means`)
  }
  const label = (k: string): string => `${field}.${k}`
  if (type === 'default') return { theta, scaling: { type: 'none' } }
  if (type === 'linear') return { theta, scaling: { type: 'linear', factor: positive(dict, 'factor', label('factor')) } }
  const low = positive(dict, 'low_freq_factor', label('low_freq_factor'))
  const high = positive(dict, 'high_freq_factor', label('high_freq_factor'))
  if (high <= low) throw new ModelConfigError(label('high_freq_factor'), `${high} must exceed low_freq_factor ${low}`)
  const original = dict.original_max_position_embeddings
  if (original !== undefined && (typeof original !== 'number' || !Number.isInteger(original) || original <= 0)) {
    throw new ModelConfigError(label('original_max_position_embeddings'), `must be a positive integer, got ${JSON.stringify(original)}`)
  }
  return {
    theta,
    scaling: {
      type: 'llama3',
      factor: positive(dict, 'factor', label('factor')),
      lowFreqFactor: low,
      highFreqFactor: high,
      // transformers falls back to max_position_embeddings
      originalMaxPositions: (original as number | undefined) ?? maxPositions
    }
  }
}

function topTheta (c: Record<string, unknown>): number {
  return c.rope_theta === undefined || c.rope_theta === null ? DEFAULT_THETA : positive(c, 'rope_theta', 'rope_theta')
}

function object (v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ModelConfigError(field, 'must be an object or null')
  return v as Record<string, unknown>
}

function positive (c: Record<string, unknown>, key: string, label: string): number {
  const v = c[key]
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ModelConfigError(label, `must be a positive number, got ${JSON.stringify(v)}`)
  return v
}
