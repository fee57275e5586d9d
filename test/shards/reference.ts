// An independent, obviously-correct Llama-family forward pass: Float64, naive loops, whole
// sequence recomputed every time. Reads tensors straight from model.safetensors with its own tiny
// parser and config.json with its own few lines, so it shares no code with the engine under test.
// Tiny models only. Families: llama; qwen2 (q/k/v biases); qwen3 (RMSNorm of each q and k head
// before rope); mistral (sliding window: position i attends to j when i - window < j ≤ i).
// Rope: default, linear, llama3, read from rope_theta + rope_scaling or from rope_parameters.
import { readFileSync } from 'node:fs'
import path from 'node:path'

type Mat = Float64Array

export class ReferenceLlama {
  readonly cfg: Record<string, any>
  private readonly tensors = new Map<string, { shape: number[], data: Mat }>()

  constructor (dir: string) {
    this.cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'))
    const buf = readFileSync(path.join(dir, 'model.safetensors'))
    const hlen = Number(buf.readBigUInt64LE(0))
    const header = JSON.parse(buf.subarray(8, 8 + hlen).toString('utf8'))
    for (const [name, e] of Object.entries<any>(header)) {
      if (name === '__metadata__') continue
      const [b, end] = e.data_offsets
      const raw = buf.subarray(8 + hlen + b, 8 + hlen + end)
      const n = e.shape.reduce((x: number, y: number) => x * y, 1)
      const data = new Float64Array(n)
      for (let i = 0; i < n; i++) {
        if (e.dtype === 'F32') data[i] = raw.readFloatLE(4 * i)
        else if (e.dtype === 'F16') data[i] = half(raw.readUInt16LE(2 * i))
        else data[i] = new Float32Array(new Uint32Array([raw.readUInt16LE(2 * i) << 16]).buffer)[0]
      }
      this.tensors.set(name, { shape: e.shape, data })
    }
  }

  get hidden (): number { return this.cfg.hidden_size }
  private get heads (): number { return this.cfg.num_attention_heads }
  private get kvHeads (): number { return this.cfg.num_key_value_heads ?? this.heads }
  private get headDim (): number { return this.cfg.head_dim ?? this.hidden / this.heads }
  /** the rope dict of either config generation, or {} */
  private get ropeDict (): Record<string, any> { return this.cfg.rope_parameters ?? this.cfg.rope_scaling ?? {} }
  private get ropeTheta (): number { return this.ropeDict.rope_theta ?? this.cfg.rope_theta ?? 10000 }
  private get window (): number { return this.cfg.model_type === 'mistral' && this.cfg.sliding_window != null ? this.cfg.sliding_window : Infinity }

  private t (name: string): Mat {
    const t = this.tensors.get(name)
    if (t === undefined) throw new Error(`reference: missing ${name}`)
    return t.data
  }

  embed (tokens: number[]): Mat[] {
    const E = this.t('model.embed_tokens.weight')
    return tokens.map((tok) => E.slice(tok * this.hidden, (tok + 1) * this.hidden))
  }

  /** Runs blocks [start, end) over the whole sequence `xs` (one vector per position). */
  blocks (xs: Mat[], start: number, end: number): Mat[] {
    let h: Mat[] = xs.map((x) => Float64Array.from(x))
    for (let l = start; l < end; l++) h = this.block(h, l)
    return h
  }

  logits (x: Mat): Mat {
    const normed = this.rmsnorm(x, this.t('model.norm.weight'))
    const W = this.tensors.has('lm_head.weight') ? this.t('lm_head.weight') : this.t('model.embed_tokens.weight')
    return matvec(W, normed, this.cfg.vocab_size, this.hidden)
  }

  /** Greedy generation by full recomputation each step. */
  greedy (prompt: number[], maxNew: number): number[] {
    const tokens = [...prompt]
    const out: number[] = []
    for (let i = 0; i < maxNew; i++) {
      const h = this.blocks(this.embed(tokens), 0, this.cfg.num_hidden_layers)
      const logits = this.logits(h[h.length - 1])
      let best = 0
      for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v
      out.push(best)
      tokens.push(best)
    }
    return out
  }

  private block (xs: Mat[], l: number): Mat[] {
    const p = `model.layers.${l}.`
    const H = this.hidden
    const D = this.headDim
    const nq = this.heads
    const nkv = this.kvHeads
    const group = nq / nkv
    const qs: Mat[] = []
    const ks: Mat[] = []
    const vs: Mat[] = []
    const qwen2 = this.cfg.model_type === 'qwen2'
    const qwen3 = this.cfg.model_type === 'qwen3'
    const project = (name: string, x: Mat, rows: number): Mat => {
      const y = matvec(this.t(p + `self_attn.${name}.weight`), x, rows, H)
      if (qwen2) { const b = this.t(p + `self_attn.${name}.bias`); for (let r = 0; r < rows; r++) y[r] += b[r] }
      return y
    }
    xs.forEach((x, pos) => {
      const n = this.rmsnorm(x, this.t(p + 'input_layernorm.weight'))
      let q = project('q_proj', n, nq * D)
      let k = project('k_proj', n, nkv * D)
      if (qwen3) {
        q = this.perHeadNorm(q, nq, this.t(p + 'self_attn.q_norm.weight'))
        k = this.perHeadNorm(k, nkv, this.t(p + 'self_attn.k_norm.weight'))
      }
      qs.push(this.rope(q, nq, pos))
      ks.push(this.rope(k, nkv, pos))
      vs.push(project('v_proj', n, nkv * D))
    })
    return xs.map((x, i) => {
      const attn = new Float64Array(nq * D)
      for (let h = 0; h < nq; h++) {
        const kvh = Math.floor(h / group)
        const first = Math.max(0, i - this.window + 1) // sliding window: keys first..i
        const scores = new Float64Array(i + 1).fill(-Infinity)
        for (let j = first; j <= i; j++) {
          let s = 0
          for (let d = 0; d < D; d++) s += qs[i][h * D + d] * ks[j][kvh * D + d]
          scores[j] = s / Math.sqrt(D)
        }
        const m = Math.max(...scores)
        let z = 0
        for (let j = first; j <= i; j++) { scores[j] = Math.exp(scores[j] - m); z += scores[j] }
        for (let j = first; j <= i; j++) for (let d = 0; d < D; d++) attn[h * D + d] += (scores[j] / z) * vs[j][kvh * D + d]
      }
      const o = matvec(this.t(p + 'self_attn.o_proj.weight'), attn, H, nq * D)
      const h1 = x.map((v, k) => v + o[k])
      const n2 = this.rmsnorm(h1, this.t(p + 'post_attention_layernorm.weight'))
      const I = this.cfg.intermediate_size
      const g = matvec(this.t(p + 'mlp.gate_proj.weight'), n2, I, H)
      const u = matvec(this.t(p + 'mlp.up_proj.weight'), n2, I, H)
      const act = g.map((v, k) => (v / (1 + Math.exp(-v))) * u[k])
      const d = matvec(this.t(p + 'mlp.down_proj.weight'), act, H, I)
      return h1.map((v, k) => v + d[k])
    })
  }

  private rmsnorm (x: Mat, w: Mat): Mat {
    let ss = 0
    for (const v of x) ss += v * v
    const r = 1 / Math.sqrt(ss / x.length + this.cfg.rms_norm_eps)
    return x.map((v, i) => v * r * w[i])
  }

  /** RMSNorm of each D-wide head of a (heads*D) vector. */
  private perHeadNorm (v: Mat, heads: number, w: Mat): Mat {
    const D = this.headDim
    const out = new Float64Array(v.length)
    for (let h = 0; h < heads; h++) out.set(this.rmsnorm(v.slice(h * D, (h + 1) * D), w), h * D)
    return out
  }

  /** Rotation frequency of pair i: theta^(-2i/D), then the config's scaling (linear, llama3). */
  inverseFrequency (i: number): number {
    const D = this.headDim
    const base = 1 / Math.pow(this.ropeTheta, (2 * i) / D)
    const r = this.ropeDict
    const type = r.rope_type ?? r.type ?? 'default'
    if (type === 'default') return base
    if (type === 'linear') return base / r.factor
    if (type !== 'llama3') throw new Error(`reference: rope type ${type}`)
    const original = r.original_max_position_embeddings ?? this.cfg.max_position_embeddings
    const wavelength = 2 * Math.PI / base
    if (wavelength < original / r.high_freq_factor) return base // short wavelengths: unchanged
    if (wavelength > original / r.low_freq_factor) return base / r.factor // long ones: divided
    const smooth = (original / wavelength - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor)
    return (1 - smooth) * base / r.factor + smooth * base
  }

  /** Llama "rotate half" RoPE on each head of a (heads*D) vector at position `pos`. */
  private rope (v: Mat, heads: number, pos: number): Mat {
    const D = this.headDim
    const half = D / 2
    const out = Float64Array.from(v)
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const theta = pos * this.inverseFrequency(i)
        const a = v[h * D + i]
        const b = v[h * D + i + half]
        out[h * D + i] = a * Math.cos(theta) - b * Math.sin(theta)
        out[h * D + i + half] = b * Math.cos(theta) + a * Math.sin(theta)
      }
    }
    return out
  }
}

function matvec (W: Mat, x: Mat, rows: number, cols: number): Mat {
  const out = new Float64Array(rows)
  for (let r = 0; r < rows; r++) {
    let s = 0
    for (let c = 0; c < cols; c++) s += W[r * cols + c] * x[c]
    out[r] = s
  }
  return out
}

function half (h: number): number {
  const s = h & 0x8000 ? -1 : 1
  const e = (h >> 10) & 0x1f
  const f = h & 0x3ff
  if (e === 0) return s * f * 2 ** -24
  if (e === 31) return f ? NaN : s * Infinity
  return s * (1 + f / 1024) * 2 ** (e - 15)
}
