// A small GGUF (v3) writer for the llama.cpp side-by-side bench: the same weights strata runs,
// written as llama.cpp reads them — F32, Q8_0 or Q4_0 matrices, q/k rows permuted the way
// llama.cpp's convert_hf_to_gguf.py permutes them (GGUF rotates interleaved pairs; HF halves).
// The vocabulary is the model's byte-level BPE tokenizer.json (llama.cpp's "gpt2" tokenizer);
// the bench feeds token ids.
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'
import path from 'node:path'
import { loadModelConfig, type ModelConfig } from '../../src/shards/config.ts'
import { ModelWeights, tensorNames } from '../../src/shards/weights.ts'
import { floatToHalf } from '../../src/shards/safetensors.ts'

export type GgufFormat = 'F32' | 'Q8_0' | 'Q4_0'

const ALIGNMENT = 32
const QK = 32
/** ggml_type ids */
const GGML_TYPE: Record<GgufFormat, number> = { F32: 0, Q4_0: 2, Q8_0: 8 }
/** llama_ftype ids (general.file_type) */
const FILE_TYPE: Record<GgufFormat, number> = { F32: 0, Q4_0: 2, Q8_0: 7 }
/** bytes per block of 32 values */
const BLOCK_BYTES: Record<Exclude<GgufFormat, 'F32'>, number> = { Q8_0: 34, Q4_0: 18 }

/** gguf_type ids of metadata values */
const enum Kv { I32 = 5, U32 = 4, F32 = 6, STRING = 8, ARRAY = 9 }
type KvValue = { type: Kv.U32, value: number } | { type: Kv.F32, value: number } | { type: Kv.STRING, value: string }
  | { type: Kv.ARRAY, of: Kv.STRING, value: string[] } | { type: Kv.ARRAY, of: Kv.I32, value: number[] }

interface TensorOut {
  name: string
  /** ne: innermost first (GGUF order), i.e. [in, out] for an HF [out, in] matrix */
  ne: number[]
  format: GgufFormat
  /** the f32 values, HF row-major */
  data: () => Float32Array
}

/** HF → GGUF q/k row order: per head, rows (2, d/2) are swapped to (d/2, 2). */
export function permuteRows (w: Float32Array, heads: number, cols: number): Float32Array {
  const rows = w.length / cols
  const half = rows / heads / 2
  const out = new Float32Array(w.length)
  for (let h = 0; h < heads; h++) {
    for (let pair = 0; pair < 2; pair++) {
      for (let i = 0; i < half; i++) {
        const from = (h * 2 * half + pair * half + i) * cols
        const to = (h * 2 * half + i * 2 + pair) * cols
        out.set(w.subarray(from, from + cols), to)
      }
    }
  }
  return out
}

/** ggml's quantize_row_q8_0_ref */
function quantizeQ8 (x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / QK) * BLOCK_BYTES.Q8_0)
  const view = new DataView(out.buffer)
  for (let b = 0; b < x.length / QK; b++) {
    let amax = 0
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[b * QK + j]))
    const d = amax / 127
    const id = d !== 0 ? 1 / d : 0
    const o = b * BLOCK_BYTES.Q8_0
    view.setUint16(o, floatToHalf(d), true)
    for (let j = 0; j < QK; j++) view.setInt8(o + 2 + j, Math.round(x[b * QK + j] * id))
  }
  return out
}

/** ggml's quantize_row_q4_0_ref */
function quantizeQ4 (x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / QK) * BLOCK_BYTES.Q4_0)
  const view = new DataView(out.buffer)
  for (let b = 0; b < x.length / QK; b++) {
    let amax = 0
    let max = 0
    for (let j = 0; j < QK; j++) {
      const v = x[b * QK + j]
      if (amax < Math.abs(v)) { amax = Math.abs(v); max = v }
    }
    const d = Math.fround(max / -8)
    const id = d !== 0 ? Math.fround(1 / d) : 0
    const o = b * BLOCK_BYTES.Q4_0
    view.setUint16(o, floatToHalf(d), true)
    for (let j = 0; j < QK / 2; j++) {
      // (int8_t)(x + 8.5f) truncates toward zero, then at most 15
      const q0 = Math.min(15, Math.trunc(Math.fround(x[b * QK + j] * id) + 8.5))
      const q1 = Math.min(15, Math.trunc(Math.fround(x[b * QK + QK / 2 + j] * id) + 8.5))
      out[o + 2 + j] = q0 | (q1 << 4)
    }
  }
  return out
}

function encode (t: TensorOut): Uint8Array {
  const data = t.data()
  if (t.format === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return t.format === 'Q8_0' ? quantizeQ8(data) : quantizeQ4(data)
}

function byteLength (t: TensorOut): number {
  const n = t.ne.reduce((a, b) => a * b, 1)
  return t.format === 'F32' ? n * 4 : (n / QK) * BLOCK_BYTES[t.format]
}

const align = (n: number): number => Math.ceil(n / ALIGNMENT) * ALIGNMENT

class Bytes {
  private readonly parts: Buffer[] = []
  u32 (v: number): this { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.parts.push(b); return this }
  u64 (v: number): this { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.parts.push(b); return this }
  i32 (v: number): this { const b = Buffer.alloc(4); b.writeInt32LE(v); this.parts.push(b); return this }
  f32 (v: number): this { const b = Buffer.alloc(4); b.writeFloatLE(v); this.parts.push(b); return this }
  str (s: string): this { const b = Buffer.from(s, 'utf8'); return this.u64(b.length).raw(b) }
  raw (b: Buffer): this { this.parts.push(b); return this }
  get length (): number { return this.parts.reduce((a, p) => a + p.length, 0) }
  concat (): Buffer { return Buffer.concat(this.parts) }
}

/** llama_token_type ids */
const TOKEN_NORMAL = 1
const TOKEN_CONTROL = 3

/** tokenizer.ggml.* from the model's tokenizer.json (a byte-level BPE, as make-model writes) */
function vocabulary (modelDir: string, cfg: ModelConfig): Array<[string, KvValue]> {
  const file = path.join(modelDir, 'tokenizer.json')
  const tok = JSON.parse(readFileSync(file, 'utf8')) as { model: { type: string, vocab: Record<string, number>, merges: Array<string | [string, string]> }, added_tokens: Array<{ id: number, content: string, special: boolean }> }
  if (tok.model.type !== 'BPE') throw new Error(`${file}: the GGUF writer handles byte-level BPE tokenizers only, not ${tok.model.type}`)
  const tokens = new Array<string>(cfg.vocabSize)
  const types = new Array<number>(cfg.vocabSize).fill(TOKEN_NORMAL)
  for (const [text, id] of Object.entries(tok.model.vocab)) tokens[id] = text
  for (const t of tok.added_tokens) {
    tokens[t.id] = t.content
    if (t.special) types[t.id] = TOKEN_CONTROL
  }
  const missing = tokens.findIndex((t) => t === undefined)
  if (tokens.length !== cfg.vocabSize || missing >= 0) throw new Error(`${file}: token ${missing} of the model's ${cfg.vocabSize} is not in the tokenizer`)
  const ids = (v: number | null | undefined): Array<[string, KvValue]> => v === null || v === undefined ? [] : [[`tokenizer.ggml.${v === cfg.bosTokenId ? 'bos' : 'eos'}_token_id`, { type: Kv.U32, value: v }]]
  return [
    ['tokenizer.ggml.model', { type: Kv.STRING, value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: Kv.STRING, value: 'default' }],
    ['tokenizer.ggml.tokens', { type: Kv.ARRAY, of: Kv.STRING, value: tokens }],
    ['tokenizer.ggml.token_type', { type: Kv.ARRAY, of: Kv.I32, value: types }],
    ['tokenizer.ggml.merges', { type: Kv.ARRAY, of: Kv.STRING, value: tok.model.merges.map((m) => typeof m === 'string' ? m : m.join(' ')) }],
    ...ids(cfg.bosTokenId),
    ...ids(cfg.eosTokenIds[0])
  ]
}

function metadata (cfg: ModelConfig, format: GgufFormat): Array<[string, KvValue]> {
  const u32 = (value: number): KvValue => ({ type: Kv.U32, value })
  const f32 = (value: number): KvValue => ({ type: Kv.F32, value })
  return [
    ['general.architecture', { type: Kv.STRING, value: 'llama' }],
    ['general.name', { type: Kv.STRING, value: 'strata-bench' }],
    ['general.alignment', u32(ALIGNMENT)],
    ['general.file_type', u32(FILE_TYPE[format])],
    ['llama.vocab_size', u32(cfg.vocabSize)],
    ['llama.context_length', u32(cfg.maxPositions)],
    ['llama.embedding_length', u32(cfg.hiddenSize)],
    ['llama.block_count', u32(cfg.numLayers)],
    ['llama.feed_forward_length', u32(cfg.intermediateSize)],
    ['llama.attention.head_count', u32(cfg.numHeads)],
    ['llama.attention.head_count_kv', u32(cfg.numKvHeads)],
    ['llama.rope.dimension_count', u32(cfg.headDim)],
    ['llama.rope.freq_base', f32(cfg.ropeTheta)],
    ['llama.attention.layer_norm_rms_epsilon', f32(cfg.rmsNormEps)]
  ]
}

/** Refuses what this writer does not translate (it serves the bench's plain Llama models). */
function checkSupported (cfg: ModelConfig): void {
  const why = cfg.family !== 'llama'
    ? `family ${cfg.family}`
    : cfg.ropeScaling.type !== 'none' ? `rope scaling ${cfg.ropeScaling.type}` : cfg.hiddenSize % QK !== 0 || cfg.intermediateSize % QK !== 0 ? `widths not multiples of ${QK}` : null
  if (why !== null) throw new Error(`the GGUF writer handles plain Llama models only, not ${why}`)
}

/** Writes the model in `modelDir` as one GGUF file; returns its size in bytes. */
export function writeGguf (modelDir: string, file: string, format: GgufFormat): number {
  const cfg = loadModelConfig(modelDir)
  checkSupported(cfg)
  const weights = new ModelWeights(modelDir)
  try {
    const H = cfg.hiddenSize
    const D = cfg.headDim
    const I = cfg.intermediateSize
    const V = cfg.vocabSize
    const f32 = (name: string, shape: number[]) => () => weights.float32(name, shape)
    const matrix = (name: string, gguf: string, rows: number, cols: number, permuteHeads?: number): TensorOut => ({
      name: gguf,
      ne: [cols, rows],
      format,
      data: permuteHeads === undefined ? f32(name, [rows, cols]) : () => permuteRows(weights.float32(name, [rows, cols]), permuteHeads, cols)
    })
    const vector = (name: string, gguf: string): TensorOut => ({ name: gguf, ne: [H], format: 'F32', data: f32(name, [H]) })
    const tensors: TensorOut[] = [matrix(tensorNames.embed, 'token_embd.weight', V, H)]
    for (let i = 0; i < cfg.numLayers; i++) {
      const n = tensorNames.block(i)
      tensors.push(
        vector(n.inputNorm, `blk.${i}.attn_norm.weight`),
        matrix(n.q, `blk.${i}.attn_q.weight`, cfg.numHeads * D, H, cfg.numHeads),
        matrix(n.k, `blk.${i}.attn_k.weight`, cfg.numKvHeads * D, H, cfg.numKvHeads),
        matrix(n.v, `blk.${i}.attn_v.weight`, cfg.numKvHeads * D, H),
        matrix(n.o, `blk.${i}.attn_output.weight`, H, cfg.numHeads * D),
        vector(n.postNorm, `blk.${i}.ffn_norm.weight`),
        matrix(n.gate, `blk.${i}.ffn_gate.weight`, I, H),
        matrix(n.up, `blk.${i}.ffn_up.weight`, I, H),
        matrix(n.down, `blk.${i}.ffn_down.weight`, H, I)
      )
    }
    tensors.push(vector(tensorNames.finalNorm, 'output_norm.weight'))
    tensors.push(matrix(weights.has(tensorNames.lmHead) ? tensorNames.lmHead : tensorNames.embed, 'output.weight', V, H))

    const kvs = [...metadata(cfg, format), ...vocabulary(modelDir, cfg)]
    const head = new Bytes().u32(0x46554747).u32(3).u64(tensors.length).u64(kvs.length)
    for (const [key, v] of kvs) {
      head.str(key).u32(v.type)
      if (v.type === Kv.STRING) head.str(v.value)
      else if (v.type === Kv.U32) head.u32(v.value)
      else if (v.type === Kv.F32) head.f32(v.value)
      else if (v.of === Kv.STRING) { head.u32(v.of).u64(v.value.length); for (const x of v.value) head.str(x) }
      else { head.u32(v.of).u64(v.value.length); for (const x of v.value) head.i32(x) }
    }
    let offset = 0
    for (const t of tensors) {
      head.str(t.name).u32(t.ne.length)
      for (const d of t.ne) head.u64(d)
      head.u32(GGML_TYPE[t.format]).u64(offset)
      offset = align(offset + byteLength(t))
    }
    const fd = openSync(file, 'w')
    try {
      let pos = 0
      const put = (b: Uint8Array): void => { pos += writeSync(fd, b) }
      const pad = (): void => { if (pos % ALIGNMENT !== 0) put(new Uint8Array(ALIGNMENT - (pos % ALIGNMENT))) }
      put(head.concat())
      pad()
      for (const t of tensors) {
        put(encode(t))
        pad()
      }
      return pos
    } finally {
      closeSync(fd)
    }
  } finally {
    weights.close()
  }
}
