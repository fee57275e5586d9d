// Writes a deterministic random-weight Hugging Face Llama-family directory: config.json,
// generation_config.json, model.safetensors (or shards + index), tokenizer.json,
// tokenizer_config.json and chat_template.jinja.
// Same seed and shape → byte-identical files. `arch` picks the family (llama, mistral with a
// sliding window, qwen2 with q/k/v biases, qwen3 with q/k norms); `configForm` writes config.json
// as older transformers do (rope_theta + rope_scaling, torch_dtype) or as transformers ≥ 5 does
// (rope_parameters, dtype) — the weights are the same either way.
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { writeSafetensors, tensorByteLength, type TensorPlan } from './safetensors-writer.ts'
import { floatToHalf, type StDtype } from './safetensors.ts'
import { tensorNames } from './weights.ts'
import { buildTokenizerJson, minTokenizerVocab, CHAT_TEMPLATE, SPECIAL_TOKENS } from './tokenizer-gen.ts'
import { CHAT_TEMPLATE_FILE } from './chat-template.ts'

export type MakeModelArch = 'llama' | 'mistral' | 'qwen2' | 'qwen3'

/** rope scaling as written into config.json (older form: rope_scaling; v5 form: inside rope_parameters) */
export type MakeModelRopeScaling =
  | { rope_type: 'linear', factor: number }
  | { rope_type: 'llama3', factor: number, low_freq_factor: number, high_freq_factor: number, original_max_position_embeddings: number }

export interface MakeModelOptions {
  out: string
  layers: number
  hidden: number
  heads: number
  kvHeads: number
  intermediate: number
  vocab: number
  seed: number
  dtype?: 'f32' | 'f16' | 'bf16'
  /** default: llama */
  arch?: MakeModelArch
  /** config.json generation: 'v4' (rope_theta, rope_scaling, torch_dtype; default) or 'v5' (rope_parameters, dtype) */
  configForm?: 'v4' | 'v5'
  /** default 10000 */
  ropeTheta?: number
  /** default: none */
  ropeScaling?: MakeModelRopeScaling
  /** mistral only: attention window in positions (default: none) */
  slidingWindow?: number
  /** default: hidden / heads */
  headDim?: number
  maxPositions?: number
  tieEmbeddings?: boolean
  /** split weights into shards of about this many bytes (default: one file) */
  shardBytes?: number
  onProgress?: (doneBytes: number, totalBytes: number) => void
}

export function makeModel (o: MakeModelOptions): void {
  validate(o)
  const headDim = o.headDim ?? o.hidden / o.heads
  const dtype: StDtype = o.dtype === 'f16' ? 'F16' : o.dtype === 'bf16' ? 'BF16' : 'F32'
  mkdirSync(o.out, { recursive: true })
  const config = configJson(o, headDim, dtype)
  writeFileSync(path.join(o.out, 'config.json'), JSON.stringify(config, null, 2) + '\n')
  if (o.vocab >= minTokenizerVocab()) {
    writeFileSync(path.join(o.out, 'tokenizer.json'), JSON.stringify(buildTokenizerJson(o.vocab)))
    writeFileSync(path.join(o.out, 'tokenizer_config.json'), JSON.stringify({
      bos_token: SPECIAL_TOKENS.bos, eos_token: SPECIAL_TOKENS.eos, unk_token: SPECIAL_TOKENS.unk,
      add_bos_token: true, add_eos_token: false, model_max_length: o.maxPositions ?? 2048
    }, null, 2) + '\n')
    // the layout transformers ≥ 4.47 saves: the template in its own file
    writeFileSync(path.join(o.out, CHAT_TEMPLATE_FILE), CHAT_TEMPLATE)
  }
  writeFileSync(path.join(o.out, 'generation_config.json'), JSON.stringify({
    bos_token_id: config.bos_token_id, eos_token_id: [config.eos_token_id]
  }, null, 2) + '\n')
  writeWeights(o, plansFor(o, headDim, dtype))
}

const ARCHITECTURES: Record<MakeModelArch, string> = {
  llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM'
}

function configJson (o: MakeModelOptions, headDim: number, dtype: StDtype): Record<string, unknown> {
  const arch = o.arch ?? 'llama'
  const dtypeName = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype]
  const theta = o.ropeTheta ?? 10000
  const rope = o.configForm === 'v5'
    ? { rope_parameters: { rope_theta: theta, ...(o.ropeScaling ?? { rope_type: 'default' }) } }
    : { rope_theta: theta, rope_scaling: o.ropeScaling ?? null }
  const family: Record<string, unknown> = {
    llama: { attention_bias: false, mlp_bias: false, pretraining_tp: 1 },
    mistral: { sliding_window: o.slidingWindow ?? null },
    qwen2: { use_sliding_window: false, sliding_window: o.maxPositions ?? 2048, max_window_layers: o.layers },
    qwen3: { attention_bias: false, use_sliding_window: false, sliding_window: null, max_window_layers: o.layers }
  }[arch]
  return {
    _name_or_path: path.basename(path.resolve(o.out)),
    architectures: [ARCHITECTURES[arch]],
    model_type: arch,
    hidden_size: o.hidden,
    num_hidden_layers: o.layers,
    num_attention_heads: o.heads,
    num_key_value_heads: o.kvHeads,
    head_dim: headDim,
    intermediate_size: o.intermediate,
    vocab_size: o.vocab,
    rms_norm_eps: 1e-5,
    ...rope,
    max_position_embeddings: o.maxPositions ?? 2048,
    tie_word_embeddings: o.tieEmbeddings === true,
    hidden_act: 'silu',
    ...family,
    ...(o.configForm === 'v5' && (arch === 'qwen2' || arch === 'qwen3') ? { layer_types: Array.from({ length: o.layers }, () => 'full_attention') } : {}),
    bos_token_id: 1,
    eos_token_id: 2,
    ...(o.configForm === 'v5' ? { dtype: dtypeName, transformers_version: '5.0.0' } : { torch_dtype: dtypeName }),
    strata_seed: o.seed
  }
}

function validate (o: MakeModelOptions): void {
  for (const k of ['layers', 'hidden', 'heads', 'kvHeads', 'intermediate', 'vocab'] as const) {
    if (!Number.isInteger(o[k]) || o[k] <= 0) throw new RangeError(`make-model: --${k === 'kvHeads' ? 'kv-heads' : k} must be a positive integer, got ${o[k]}`)
  }
  if (!Number.isInteger(o.seed)) throw new RangeError(`make-model: --seed must be an integer, got ${o.seed}`)
  if (o.heads % o.kvHeads !== 0) throw new RangeError(`make-model: --kv-heads ${o.kvHeads} must divide --heads ${o.heads}`)
  const headDim = o.headDim ?? o.hidden / o.heads
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new RangeError(`make-model: head dim ${headDim} (hidden / heads) must be an even integer`)
  if (o.arch !== undefined && !(o.arch in ARCHITECTURES)) throw new RangeError(`make-model: --arch ${String(o.arch)} is not one of ${Object.keys(ARCHITECTURES).join(', ')}`)
  if (o.slidingWindow !== undefined && (o.arch !== 'mistral' || !Number.isInteger(o.slidingWindow) || o.slidingWindow <= 0)) {
    throw new RangeError('make-model: --sliding-window takes a positive integer and needs --arch mistral')
  }
}

function plansFor (o: MakeModelOptions, headDim: number, dtype: StDtype): TensorPlan[] {
  const plans: TensorPlan[] = [{ name: tensorNames.embed, shape: [o.vocab, o.hidden], dtype }]
  for (let l = 0; l < o.layers; l++) {
    const n = tensorNames.block(l)
    plans.push(
      { name: n.inputNorm, shape: [o.hidden], dtype },
      { name: n.q, shape: [o.heads * headDim, o.hidden], dtype },
      { name: n.k, shape: [o.kvHeads * headDim, o.hidden], dtype },
      { name: n.v, shape: [o.kvHeads * headDim, o.hidden], dtype },
      ...extraPlans(o, l, headDim, dtype),
      { name: n.o, shape: [o.hidden, o.heads * headDim], dtype },
      { name: n.postNorm, shape: [o.hidden], dtype },
      { name: n.gate, shape: [o.intermediate, o.hidden], dtype },
      { name: n.up, shape: [o.intermediate, o.hidden], dtype },
      { name: n.down, shape: [o.hidden, o.intermediate], dtype })
  }
  plans.push({ name: tensorNames.finalNorm, shape: [o.hidden], dtype })
  if (o.tieEmbeddings !== true) plans.push({ name: tensorNames.lmHead, shape: [o.vocab, o.hidden], dtype })
  return plans
}

function extraPlans (o: MakeModelOptions, l: number, headDim: number, dtype: StDtype): TensorPlan[] {
  const x = tensorNames.blockExtras(l)
  if (o.arch === 'qwen2') {
    return [
      { name: x.qBias, shape: [o.heads * headDim], dtype },
      { name: x.kBias, shape: [o.kvHeads * headDim], dtype },
      { name: x.vBias, shape: [o.kvHeads * headDim], dtype }
    ]
  }
  if (o.arch === 'qwen3') return [{ name: x.qNorm, shape: [headDim], dtype }, { name: x.kNorm, shape: [headDim], dtype }]
  return []
}

function writeWeights (o: MakeModelOptions, plans: TensorPlan[]): void {
  const total = plans.reduce((n, t) => n + tensorByteLength(t), 0)
  let done = 0
  const produce = (t: TensorPlan): Uint8Array => {
    const bytes = encode(randomTensor(t, o.seed), t.dtype)
    done += bytes.byteLength
    o.onProgress?.(done, total)
    return bytes
  }
  const shards = splitIntoShards(plans, o.shardBytes ?? Infinity)
  if (shards.length === 1) {
    writeSafetensors(path.join(o.out, 'model.safetensors'), plans, produce, { format: 'pt' })
    return
  }
  const weightMap: Record<string, string> = {}
  shards.forEach((shard, i) => {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`
    for (const t of shard) weightMap[t.name] = file
    writeSafetensors(path.join(o.out, file), shard, produce, { format: 'pt' })
  })
  writeFileSync(path.join(o.out, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n')
}

function splitIntoShards (plans: TensorPlan[], maxBytes: number): TensorPlan[][] {
  const shards: TensorPlan[][] = [[]]
  let size = 0
  for (const t of plans) {
    const len = tensorByteLength(t)
    if (size > 0 && size + len > maxBytes) { shards.push([]); size = 0 }
    shards[shards.length - 1].push(t)
    size += len
  }
  return shards
}

/**
 * Uniform values with std 1/sqrt(fan_in) for matrices, 1 ± 0.1 for norm weights, ±0.5 for
 * embeddings and biases, from a PRNG seeded by (seed, tensor name): each tensor is independent of the others.
 */
function randomTensor (t: TensorPlan, seed: number): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1)
  const out = new Float32Array(n)
  const rand = xorshift(hashSeed(seed, t.name))
  if (t.name.endsWith('.bias')) {
    for (let i = 0; i < n; i++) out[i] = 0.5 * rand()
  } else if (t.shape.length === 1) {
    for (let i = 0; i < n; i++) out[i] = 1 + 0.1 * rand()
  } else {
    const amp = t.name === tensorNames.embed ? 0.5 : Math.sqrt(3 / t.shape[1])
    for (let i = 0; i < n; i++) out[i] = amp * rand()
  }
  return out
}

function encode (data: Float32Array, dtype: StDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  const out = new Uint16Array(data.length)
  if (dtype === 'F16') {
    for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i])
  } else {
    const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length)
    for (let i = 0; i < data.length; i++) out[i] = (u32[i] + 0x7fff + ((u32[i] >>> 16) & 1)) >>> 16 // round to nearest even
  }
  return new Uint8Array(out.buffer)
}

function hashSeed (seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0
  return h === 0 ? 1 : h
}

/** xorshift32 → uniform in [-1, 1). */
function xorshift (state: number): () => number {
  let s = state >>> 0
  return () => {
    s ^= s << 13; s >>>= 0
    s ^= s >>> 17
    s ^= s << 5; s >>>= 0
    return s / 2147483648 - 1
  }
}
