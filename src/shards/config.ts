// Llama-family config.json → a validated ModelConfig. Unsupported features are rejected with
// an error naming the field, never silently ignored.
import { readFileSync, existsSync } from 'node:fs'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { GenerationConfigError, ModelConfigError } from './errors.ts'

export type RopeScaling =
  | { type: 'none' }
  | { type: 'linear', factor: number }
  | { type: 'llama3', factor: number, lowFreqFactor: number, highFreqFactor: number, originalMaxPositions: number }

export interface ModelConfig {
  architecture: string
  hiddenSize: number
  numLayers: number
  numHeads: number
  numKvHeads: number
  headDim: number
  intermediateSize: number
  vocabSize: number
  rmsNormEps: number
  ropeTheta: number
  ropeScaling: RopeScaling
  maxPositions: number
  tieWordEmbeddings: boolean
  bosTokenId: number | null
  /** generation ends on any of these: generation_config.json's eos_token_id when it sets one, else config.json's */
  eosTokenIds: number[]
  /** dtype the weights were saved in, informational ("float32", "float16", "bfloat16") */
  torchDtype: string
}

const SUPPORTED_ARCHITECTURES = new Set(['LlamaForCausalLM', 'MistralForCausalLM'])
const SUPPORTED_MODEL_TYPES = new Set(['llama', 'mistral'])

export function loadModelConfig (modelDir: string): ModelConfig {
  const file = path.join(modelDir, 'config.json')
  if (!existsSync(file)) throw new ModelConfigError('(file)', `not found in ${modelDir}`)
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new ModelConfigError('(file)', `not valid JSON: ${(err as Error).message}`)
  }
  const config = parseModelConfig(raw)
  const eos = generationEosTokenIds(modelDir)
  return eos === null ? config : { ...config, eosTokenIds: eos }
}

/**
 * eos_token_id of DIR/generation_config.json (an id or a list, as Llama-3's several stop ids), or
 * null when the file or the key is absent. As in transformers, the generation config decides
 * where generation stops; config.json's eos_token_id is the fallback. Its sampling defaults
 * (temperature, top_p…) are not applied: the caller's sampling options decide.
 */
export function generationEosTokenIds (modelDir: string): number[] | null {
  const file = path.join(modelDir, 'generation_config.json')
  if (!existsSync(file)) return null
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new GenerationConfigError('(file)', `not valid JSON: ${(err as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new GenerationConfigError('(root)', 'must be a JSON object')
  const eos = (raw as Record<string, unknown>).eos_token_id
  if (eos === undefined || eos === null) return null
  const ids = Array.isArray(eos) ? eos : [eos]
  if (!ids.every((t) => Number.isInteger(t) && t >= 0)) throw new GenerationConfigError('eos_token_id', `must be a token id or a list of token ids, got ${JSON.stringify(eos)}`)
  return ids as number[]
}

export function parseModelConfig (raw: unknown): ModelConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ModelConfigError('(root)', 'must be a JSON object')
  const c = raw as Record<string, unknown>

  const architectures = c.architectures
  if (architectures !== undefined) {
    if (!Array.isArray(architectures) || architectures.length !== 1 || typeof architectures[0] !== 'string') {
      throw new ModelConfigError('architectures', 'must be a list with one architecture name')
    }
    if (!SUPPORTED_ARCHITECTURES.has(architectures[0])) {
      throw new ModelConfigError('architectures', `"${architectures[0]}" is not supported (supported: ${[...SUPPORTED_ARCHITECTURES].join(', ')})`)
    }
  }
  const modelType = c.model_type
  if (typeof modelType !== 'string' || !SUPPORTED_MODEL_TYPES.has(modelType)) {
    throw new ModelConfigError('model_type', `${JSON.stringify(modelType)} is not supported (supported: ${[...SUPPORTED_MODEL_TYPES].join(', ')})`)
  }
  const hiddenSize = positiveInt(c, 'hidden_size')
  const numHeads = positiveInt(c, 'num_attention_heads')
  const numKvHeads = c.num_key_value_heads === undefined || c.num_key_value_heads === null ? numHeads : positiveInt(c, 'num_key_value_heads')
  if (numHeads % numKvHeads !== 0) throw new ModelConfigError('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`)
  const headDim = c.head_dim === undefined || c.head_dim === null ? hiddenSize / numHeads : positiveInt(c, 'head_dim')
  if (!Number.isInteger(headDim)) throw new ModelConfigError('num_attention_heads', `${numHeads} does not divide hidden_size ${hiddenSize}`)
  // onnxruntime's CPU GroupQueryAttention kernel only takes head sizes that are multiples of 16
  // (every released Llama-family model uses 64 or 128)
  if (headDim % 16 !== 0) throw new ModelConfigError('head_dim', `${headDim} is not supported: it must be a multiple of 16`)

  for (const flag of ['attention_bias', 'mlp_bias']) {
    if (c[flag] === true) throw new ModelConfigError(flag, 'biases are not supported')
  }
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') throw new ModelConfigError('hidden_act', `${JSON.stringify(c.hidden_act)} is not supported (only "silu")`)
  if (c.sliding_window !== undefined && c.sliding_window !== null) throw new ModelConfigError('sliding_window', 'sliding-window attention is not supported')

  const eos = c.eos_token_id
  const eosTokenIds = eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos]
  if (!eosTokenIds.every((t) => Number.isInteger(t) && t >= 0)) throw new ModelConfigError('eos_token_id', 'must be a token id or a list of token ids')
  const bos = c.bos_token_id
  if (bos !== undefined && bos !== null && !(Number.isInteger(bos) && (bos as number) >= 0)) throw new ModelConfigError('bos_token_id', 'must be a token id')

  const maxPositions = c.max_position_embeddings === undefined ? 2048 : positiveInt(c, 'max_position_embeddings')
  return {
    architecture: architectures === undefined ? 'LlamaForCausalLM' : (architectures as string[])[0],
    hiddenSize,
    numLayers: positiveInt(c, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: positiveInt(c, 'intermediate_size'),
    vocabSize: positiveInt(c, 'vocab_size'),
    rmsNormEps: c.rms_norm_eps === undefined ? 1e-6 : positiveNumber(c, 'rms_norm_eps'),
    ropeTheta: c.rope_theta === undefined ? 10000 : positiveNumber(c, 'rope_theta'),
    ropeScaling: parseRopeScaling(c.rope_scaling, maxPositions),
    maxPositions,
    tieWordEmbeddings: c.tie_word_embeddings === true,
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenIds: eosTokenIds as number[],
    torchDtype: typeof c.torch_dtype === 'string' ? c.torch_dtype : 'float32'
  }
}

function parseRopeScaling (v: unknown, maxPositions: number): RopeScaling {
  if (v === undefined || v === null) return { type: 'none' }
  if (typeof v !== 'object' || Array.isArray(v)) throw new ModelConfigError('rope_scaling', 'must be an object or null')
  const r = v as Record<string, unknown>
  const type = r.rope_type ?? r.type
  if (type === 'default') return { type: 'none' }
  if (type === 'linear') return { type: 'linear', factor: positiveNumber(r, 'factor', 'rope_scaling.factor') }
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: positiveNumber(r, 'factor', 'rope_scaling.factor'),
      lowFreqFactor: positiveNumber(r, 'low_freq_factor', 'rope_scaling.low_freq_factor'),
      highFreqFactor: positiveNumber(r, 'high_freq_factor', 'rope_scaling.high_freq_factor'),
      originalMaxPositions: r.original_max_position_embeddings === undefined ? maxPositions : positiveInt(r, 'original_max_position_embeddings', 'rope_scaling.original_max_position_embeddings')
    }
  }
  throw new ModelConfigError('rope_scaling', `type ${JSON.stringify(type)} is not supported (supported: linear, llama3)`)
}

function positiveInt (c: Record<string, unknown>, key: string, label = key): number {
  const v = c[key]
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ModelConfigError(label, `must be a positive integer, got ${JSON.stringify(v)}`)
  return v
}

function positiveNumber (c: Record<string, unknown>, key: string, label = key): number {
  const v = c[key]
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ModelConfigError(label, `must be a positive number, got ${JSON.stringify(v)}`)
  return v
}

/**
 * Stable model id shared by peers and clients without extra flags: the config's `_name_or_path`
 * basename when present, plus a short hash of the architecture-defining fields.
 */
export function modelIdFor (modelDir: string): string {
  const raw = JSON.parse(readFileSync(path.join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>
  const cfg = parseModelConfig(raw)
  const fingerprint = JSON.stringify([cfg.architecture, cfg.hiddenSize, cfg.numLayers, cfg.numHeads, cfg.numKvHeads, cfg.headDim,
    cfg.intermediateSize, cfg.vocabSize, cfg.rmsNormEps, cfg.ropeTheta, cfg.ropeScaling, cfg.tieWordEmbeddings, raw.strata_seed ?? null])
  const hash = createHash('sha256').update(fingerprint).digest('hex').slice(0, 12)
  const name = typeof raw._name_or_path === 'string' && raw._name_or_path !== '' ? path.basename(raw._name_or_path) : 'llama'
  return `${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${hash}`
}
