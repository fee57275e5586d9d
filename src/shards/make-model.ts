// Writes a deterministic random-weight Hugging Face Llama directory: config.json,
// generation_config.json, model.safetensors (or shards + index), tokenizer.json,
// tokenizer_config.json and chat_template.jinja.
// Same seed and shape → byte-identical files.
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { writeSafetensors, tensorByteLength, type TensorPlan } from './safetensors-writer.ts'
import { floatToHalf, type StDtype } from './safetensors.ts'
import { tensorNames } from './weights.ts'
import { buildTokenizerJson, minTokenizerVocab, CHAT_TEMPLATE, SPECIAL_TOKENS } from './tokenizer-gen.ts'
import { CHAT_TEMPLATE_FILE } from './chat-template.ts'

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
  const config = {
    _name_or_path: path.basename(path.resolve(o.out)),
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: o.hidden,
    num_hidden_layers: o.layers,
    num_attention_heads: o.heads,
    num_key_value_heads: o.kvHeads,
    head_dim: headDim,
    intermediate_size: o.intermediate,
    vocab_size: o.vocab,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    max_position_embeddings: o.maxPositions ?? 2048,
    tie_word_embeddings: o.tieEmbeddings === true,
    hidden_act: 'silu',
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
    strata_seed: o.seed
  }
  writeFileSync(path.join(o.out, 'config.json'), JSON.stringify(config, null, 2) + '\n')
  if (o.vocab >= minTokenizerVocab()) {
    writeFileSync(path.join(o.out, 'tokenizer.json'), JSON.stringify(buildTokenizerJson(o.vocab)))
    writeFileSync(path.join(o.out, 'tokenizer_config.json'), JSON.stringify({
      bos_token: SPECIAL_TOKENS.bos, eos_token: SPECIAL_TOKENS.eos, unk_token: SPECIAL_TOKENS.unk,
      add_bos_token: true, add_eos_token: false, model_max_length: config.max_position_embeddings
    }, null, 2) + '\n')
    // the layout transformers ≥ 4.47 saves: the template in its own file
    writeFileSync(path.join(o.out, CHAT_TEMPLATE_FILE), CHAT_TEMPLATE)
  }
  writeFileSync(path.join(o.out, 'generation_config.json'), JSON.stringify({
    bos_token_id: config.bos_token_id, eos_token_id: [config.eos_token_id]
  }, null, 2) + '\n')
  writeWeights(o, plansFor(o, headDim, dtype))
}

function validate (o: MakeModelOptions): void {
  for (const k of ['layers', 'hidden', 'heads', 'kvHeads', 'intermediate', 'vocab'] as const) {
    if (!Number.isInteger(o[k]) || o[k] <= 0) throw new RangeError(`make-model: --${k === 'kvHeads' ? 'kv-heads' : k} must be a positive integer, got ${o[k]}`)
  }
  if (!Number.isInteger(o.seed)) throw new RangeError(`make-model: --seed must be an integer, got ${o.seed}`)
  if (o.heads % o.kvHeads !== 0) throw new RangeError(`make-model: --kv-heads ${o.kvHeads} must divide --heads ${o.heads}`)
  const headDim = o.headDim ?? o.hidden / o.heads
  if (!Number.isInteger(headDim) || headDim % 16 !== 0) throw new RangeError(`make-model: head dim ${headDim} (hidden / heads) must be a multiple of 16`)
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
 * Uniform values with std 1/sqrt(fan_in) for matrices, 1 ± 0.1 for norm weights and ±0.5 for
 * embeddings, from a PRNG seeded by (seed, tensor name): each tensor is independent of the others.
 */
function randomTensor (t: TensorPlan, seed: number): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1)
  const out = new Float32Array(n)
  const rand = xorshift(hashSeed(seed, t.name))
  if (t.shape.length === 1) {
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
