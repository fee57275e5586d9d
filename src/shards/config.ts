// Llama-family config.json → a validated ModelConfig, for both generations of the format:
//   older transformers: `rope_theta` + `rope_scaling`, `torch_dtype`
//   transformers ≥ 5:   `rope_parameters` (theta and scaling inside), `dtype`
//
// Every top-level key is classified (see config-keys.ts): used, harmless (bookkeeping that cannot
// change the math), or refused with an error naming it. Keys nobody has classified are refused
// too, unless the caller allows them (`allowUnknownKeys`, the CLI's --allow-unknown-config): a
// new config format must never change the math silently.
import { readFileSync, existsSync } from 'node:fs'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { GenerationConfigError, ModelConfigError } from './errors.ts'
import { FAMILIES, HARMLESS_KEYS, REFUSED_KEYS, familyOf, type Family } from './config-keys.ts'
import { parseRope, type RopeScaling } from './config-rope.ts'

export type { Family } from './config-keys.ts'
export type { RopeScaling } from './config-rope.ts'

export interface ModelConfig {
  /** e.g. "LlamaForCausalLM" */
  architecture: string
  /** the block variant: llama, mistral (sliding window), qwen2 (q/k/v bias), qwen3 (q/k norm) */
  family: Family
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
  /** q, k and v projections carry biases (Qwen2) */
  qkvBias: boolean
  /** per-head RMSNorm on q and k before rotary embedding (Qwen3) */
  qkNorm: boolean
  /** a position attends to at most this many positions, itself included (Mistral); null = all */
  slidingWindow: number | null
  bosTokenId: number | null
  /** generation ends on any of these: generation_config.json's eos_token_id when it sets one, else config.json's */
  eosTokenIds: number[]
  /** dtype the weights were saved in, informational ("float32", "float16", "bfloat16") */
  torchDtype: string
  /** keys nobody has classified, accepted only because the caller allowed unknown keys */
  unknownKeys: string[]
}

export interface ConfigReadOptions {
  /** accept keys that are neither used nor known harmless (the caller warns loudly); default false */
  allowUnknownKeys?: boolean
}

export function loadModelConfig (modelDir: string, opts: ConfigReadOptions = {}): ModelConfig {
  const config = parseModelConfig(readRawConfig(modelDir), opts)
  const eos = generationEosTokenIds(modelDir)
  return eos === null ? config : { ...config, eosTokenIds: eos }
}

function readRawConfig (modelDir: string): unknown {
  const file = path.join(modelDir, 'config.json')
  if (!existsSync(file)) throw new ModelConfigError('(file)', `not found in ${modelDir}`)
  try {
    return JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new ModelConfigError('(file)', `not valid JSON: ${(err as Error).message}`)
  }
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

export function parseModelConfig (raw: unknown, opts: ConfigReadOptions = {}): ModelConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ModelConfigError('(root)', 'must be a JSON object')
  const c = raw as Record<string, unknown>

  const modelType = c.model_type
  const family = typeof modelType === 'string' ? familyOf(modelType) : undefined
  if (family === undefined) {
    throw new ModelConfigError('model_type', `${JSON.stringify(modelType)} is not supported (supported: ${Object.keys(FAMILIES).join(', ')})`)
  }
  const spec = FAMILIES[family]
  const architectures = c.architectures
  if (architectures !== undefined) {
    if (!Array.isArray(architectures) || architectures.length !== 1 || typeof architectures[0] !== 'string') {
      throw new ModelConfigError('architectures', 'must be a list with one architecture name')
    }
    if (architectures[0] !== spec.architecture) {
      throw new ModelConfigError('architectures', `"${architectures[0]}" is not supported for model_type "${family}" (expected ${spec.architecture})`)
    }
  }

  // classify every key before reading any: used by this family, harmless, or refused
  const unknownKeys: string[] = []
  for (const key of Object.keys(c)) {
    if (spec.used.has(key) || HARMLESS_KEYS.has(key)) continue
    if (key in spec.mustBeDefault) continue
    if (Object.hasOwn(REFUSED_KEYS, key) && c[key] !== null) throw new ModelConfigError(key, REFUSED_KEYS[key])
    if (opts.allowUnknownKeys === true) unknownKeys.push(key)
    else throw new ModelConfigError(key, `unknown key (a format strata does not know could change the math); pass --allow-unknown-config to proceed anyway`)
  }
  for (const [key, check] of Object.entries(spec.mustBeDefault)) {
    if (c[key] !== undefined && !check.accepts(c[key])) throw new ModelConfigError(key, `${JSON.stringify(c[key])} is not supported (${check.supported})`)
  }

  const hiddenSize = positiveInt(c, 'hidden_size')
  const numLayers = positiveInt(c, 'num_hidden_layers')
  const numHeads = positiveInt(c, 'num_attention_heads')
  const numKvHeads = c.num_key_value_heads === undefined || c.num_key_value_heads === null ? numHeads : positiveInt(c, 'num_key_value_heads')
  if (numHeads % numKvHeads !== 0) throw new ModelConfigError('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`)
  const headDim = c.head_dim === undefined || c.head_dim === null ? hiddenSize / numHeads : positiveInt(c, 'head_dim')
  if (!Number.isInteger(headDim)) throw new ModelConfigError('num_attention_heads', `${numHeads} does not divide hidden_size ${hiddenSize}`)
  if (headDim % 2 !== 0) throw new ModelConfigError('head_dim', `${headDim} is odd: rotary embedding needs an even head dim`)

  const eos = c.eos_token_id
  const eosTokenIds = eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos]
  if (!eosTokenIds.every((t) => Number.isInteger(t) && t >= 0)) throw new ModelConfigError('eos_token_id', 'must be a token id or a list of token ids')
  const bos = c.bos_token_id
  if (bos !== undefined && bos !== null && !(Number.isInteger(bos) && (bos as number) >= 0)) throw new ModelConfigError('bos_token_id', 'must be a token id')

  const maxPositions = c.max_position_embeddings === undefined ? 2048 : positiveInt(c, 'max_position_embeddings')
  const rope = parseRope(c, maxPositions)
  return {
    architecture: spec.architecture,
    family,
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: positiveInt(c, 'intermediate_size'),
    vocabSize: positiveInt(c, 'vocab_size'),
    rmsNormEps: c.rms_norm_eps === undefined ? 1e-6 : positiveNumber(c, 'rms_norm_eps'),
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    maxPositions,
    tieWordEmbeddings: c.tie_word_embeddings === undefined ? spec.tiedByDefault : bool(c, 'tie_word_embeddings'),
    qkvBias: family === 'qwen2',
    qkNorm: family === 'qwen3',
    slidingWindow: slidingWindow(c, family, numLayers),
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenIds: eosTokenIds as number[],
    torchDtype: weightDtype(c),
    unknownKeys
  }
}

/**
 * Mistral: `sliding_window` (null = off). Qwen2/Qwen3 only switch it on with
 * `use_sliding_window`, and then only for some layers: that variant is refused.
 */
function slidingWindow (c: Record<string, unknown>, family: Family, numLayers: number): number | null {
  if (family === 'qwen2' || family === 'qwen3') {
    if (c.use_sliding_window === true) throw new ModelConfigError('use_sliding_window', 'true is not supported (sliding window on some layers only)')
    if (c.use_sliding_window !== undefined && c.use_sliding_window !== false) throw new ModelConfigError('use_sliding_window', 'must be a boolean')
    if (c.layer_types !== undefined) {
      const types = c.layer_types
      if (!Array.isArray(types) || types.length !== numLayers) throw new ModelConfigError('layer_types', `must list one type for each of the ${numLayers} layers`)
      const other = types.find((t) => t !== 'full_attention')
      if (other !== undefined) throw new ModelConfigError('layer_types', `${JSON.stringify(other)} is not supported (only "full_attention")`)
    }
    return null
  }
  if (family !== 'mistral' || c.sliding_window === undefined || c.sliding_window === null) return null
  return positiveInt(c, 'sliding_window')
}

function weightDtype (c: Record<string, unknown>): string {
  const known = ['float32', 'float16', 'bfloat16']
  for (const key of ['dtype', 'torch_dtype']) {
    const v = c[key]
    if (v !== undefined && v !== null && (typeof v !== 'string' || !known.includes(v))) throw new ModelConfigError(key, `${JSON.stringify(v)} is not supported (supported: ${known.join(', ')})`)
  }
  const dtype = c.dtype as string | undefined | null
  const torchDtype = c.torch_dtype as string | undefined | null
  if (typeof dtype === 'string' && typeof torchDtype === 'string' && dtype !== torchDtype) {
    throw new ModelConfigError('dtype', `"${dtype}" contradicts torch_dtype "${torchDtype}"`)
  }
  return dtype ?? torchDtype ?? 'float32'
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

function bool (c: Record<string, unknown>, key: string): boolean {
  const v = c[key]
  if (typeof v !== 'boolean') throw new ModelConfigError(key, `must be true or false, got ${JSON.stringify(v)}`)
  return v
}

/**
 * Stable model id shared by peers and clients without extra flags: the config's `_name_or_path`
 * basename when present, plus a short hash of the architecture-defining fields.
 */
export function modelIdFor (modelDir: string, opts: ConfigReadOptions = {}): string {
  const raw = readRawConfig(modelDir) as Record<string, unknown>
  const cfg = parseModelConfig(raw, opts)
  const fingerprint = JSON.stringify([cfg.architecture, cfg.hiddenSize, cfg.numLayers, cfg.numHeads, cfg.numKvHeads, cfg.headDim,
    cfg.intermediateSize, cfg.vocabSize, cfg.rmsNormEps, cfg.ropeTheta, cfg.ropeScaling, cfg.tieWordEmbeddings, raw.strata_seed ?? null,
    ...(cfg.slidingWindow !== null ? [cfg.slidingWindow] : [])])
  const hash = createHash('sha256').update(fingerprint).digest('hex').slice(0, 12)
  const name = typeof raw._name_or_path === 'string' && raw._name_or_path !== '' ? path.basename(raw._name_or_path) : cfg.family
  return `${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${hash}`
}
