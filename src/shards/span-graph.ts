// Builds ONE onnx graph for a contiguous span of transformer blocks [start, end).
//
// inputs : hidden (B, seq, H) f32; seqlens_k (B) i32 = total_len - 1 per row; total_seq_len () i32;
//          past_key_<l>, past_value_<l> (B, kvHeads, past, headDim) f32 for each block l
// outputs: out_hidden (B, seq, H) f32; present_key_<l>, present_value_<l> (B, kvHeads, total, headDim);
//          hidden_after_<l> (B, seq, H) for every block but the last, so a session may leave the
//          span early: a peer hosting [0, 4) can serve [0, 2) of a chain (blocks 2-3 run unused)
// B is 1 for one session's step; B > 1 batches decode steps (seq 1) of several sessions whose
// pasts are padded to the longest one: row b reads only its first seqlens_k[b] past positions
// (see span-engine.ts stepBatch).
//
// Each block is self-contained (its residual adds stay inside it), so a block computes the same
// bits whichever span graph it sits in: splitting a model across peers cannot change the output.
//
// Attention runs in com.microsoft GroupQueryAttention, whose CPU kernel needs head_dim % 16 == 0.
// Other head dims (8, 24, 40, …) are zero-padded per head to the next multiple of 16: each rotary
// half [0, D/2) and [D/2, D) is padded separately, so the kernel's rotate-half pairs (i, i + Dk/2)
// stay the model's pairs (i, i + D/2); padded lanes are 0 in q, k and v, so q·k and the attention
// output are unchanged; the `scale` attribute keeps 1/sqrt(D). The KV cache holds padded heads
// (headDim of the past/present tensors is kvHeadDim(cfg)).
//
// Family variants: Qwen2 adds q/k/v biases; Qwen3 normalizes q and k per head (RMSNorm over D)
// before rotary; Mistral's sliding window is GQA's `local_window_size`.
import type { ModelConfig } from './config.ts'
import { GraphBuilder, DataType, type FileBytes } from './onnx/builder.ts'
import { rotaryCaches } from './rope.ts'
import { tensorNames, type ModelWeights } from './weights.ts'
import { type QuantBits } from './quantize.ts'
import { float32Bytes, quantizedMatrix, tensorRows, type MatrixSource } from './matrix-source.ts'

/** How matrix weights are stored inside the graph. */
export type WeightFormat = 'f32' | 'f16' | 'int8' | 'int4'

export function isQuantized (fmt: WeightFormat): fmt is 'int8' | 'int4' {
  return fmt === 'int8' || fmt === 'int4'
}

export interface SpanSpec {
  start: number
  end: number
  weightFormat: WeightFormat
}

export const spanIo = {
  hidden: 'hidden',
  seqlensK: 'seqlens_k',
  totalSeqLen: 'total_seq_len',
  outHidden: 'out_hidden',
  /** output of block l; for the span's last block this is out_hidden */
  hiddenAfter: (l: number, end: number) => l === end - 1 ? 'out_hidden' : `hidden_after_${l}`,
  pastKey: (l: number) => `past_key_${l}`,
  pastValue: (l: number) => `past_value_${l}`,
  presentKey: (l: number) => `present_key_${l}`,
  presentValue: (l: number) => `present_value_${l}`
}

/** head dim of the attention kernel and the KV cache: the model's, rounded up to a multiple of 16 */
export function kvHeadDim (cfg: ModelConfig): number {
  return Math.ceil(cfg.headDim / 16) * 16
}

export function buildSpanGraph (cfg: ModelConfig, weights: ModelWeights, spec: SpanSpec): GraphBuilder {
  const g = new GraphBuilder(`strata_span_${spec.start}_${spec.end}`)
  const H = cfg.hiddenSize
  const Dk = kvHeadDim(cfg)
  const kvShape = ['batch', cfg.numKvHeads, 'past', Dk]
  let x = g.input(spanIo.hidden, DataType.FLOAT, ['batch', 'seq', H])
  g.input(spanIo.seqlensK, DataType.INT32, ['batch'])
  g.input(spanIo.totalSeqLen, DataType.INT32, [])
  const { cos, sin } = rotaryCaches(cfg)
  g.floatInit('cos_cache', [cfg.maxPositions, Dk / 2], padColumns(cos, cfg.maxPositions, cfg.headDim / 2, Dk / 2))
  g.floatInit('sin_cache', [cfg.maxPositions, Dk / 2], padColumns(sin, cfg.maxPositions, cfg.headDim / 2, Dk / 2))
  for (let l = spec.start; l < spec.end; l++) {
    g.input(spanIo.pastKey(l), DataType.FLOAT, kvShape)
    g.input(spanIo.pastValue(l), DataType.FLOAT, kvShape)
    x = addBlock(g, cfg, weights, l, x, spec.weightFormat, spanIo.hiddenAfter(l, spec.end))
    g.output(x, DataType.FLOAT, ['batch', 'seq', H])
  }
  for (let l = spec.start; l < spec.end; l++) {
    g.output(spanIo.presentKey(l), DataType.FLOAT, ['batch', cfg.numKvHeads, 'total', Dk])
    g.output(spanIo.presentValue(l), DataType.FLOAT, ['batch', cfg.numKvHeads, 'total', Dk])
  }
  return g
}

/** One Llama decoder block: x + attn(norm(x)), then + mlp(norm(·)). Returns the output name. */
function addBlock (g: GraphBuilder, cfg: ModelConfig, w: ModelWeights, l: number, x: string, fmt: WeightFormat, outName: string): string {
  const n = tensorNames.block(l)
  const H = cfg.hiddenSize
  const D = cfg.headDim
  const qDim = cfg.numHeads * D
  const kvDim = cfg.numKvHeads * D
  const eps = { float: cfg.rmsNormEps }

  const inNorm = g.floatInit(`l${l}.input_norm`, [H], w.float32(n.inputNorm, [H]))
  const normed = g.op('SimplifiedLayerNormalization', [x, inNorm], { attrs: { axis: -1, epsilon: eps, stash_type: 1 } })

  // q, k and v projections fused into one matrix: (qDim + 2 kvDim, H)
  const qkv = tensorRows(w, [[n.q, qDim], [n.k, kvDim], [n.v, kvDim]], H)
  let packedQkv = linear(g, `l${l}.qkv`, normed, qkv, fmt)
  const extra = tensorNames.blockExtras(l)
  if (cfg.qkvBias) {
    const bias = concatRows([w.float32(extra.qBias, [qDim]), w.float32(extra.kBias, [kvDim]), w.float32(extra.vBias, [kvDim])])
    packedQkv = g.op('Add', [packedQkv, g.floatInit(`l${l}.qkv_bias`, [qDim + 2 * kvDim], bias)])
  }
  const Dk = kvHeadDim(cfg)
  let attnIn = [packedQkv, '', '']
  if (cfg.qkNorm || Dk !== D) {
    let [q, k, v] = g.node('Split', [packedQkv, g.int64Init(`l${l}.qkv_split`, [qDim, kvDim, kvDim])], { outputs: 3, attrs: { axis: -1 } })
    if (cfg.qkNorm) {
      q = headNorm(g, `l${l}.q_norm`, q, cfg.numHeads, D, w.float32(extra.qNorm, [D]), cfg.rmsNormEps)
      k = headNorm(g, `l${l}.k_norm`, k, cfg.numKvHeads, D, w.float32(extra.kNorm, [D]), cfg.rmsNormEps)
    }
    if (Dk !== D) [q, k, v] = [padHeads(g, `l${l}.q_pad`, q, cfg.numHeads, D, Dk), padHeads(g, `l${l}.k_pad`, k, cfg.numKvHeads, D, Dk), padHeads(g, `l${l}.v_pad`, v, cfg.numKvHeads, D, Dk)]
    attnIn = [q, k, v]
  }
  const [attn] = g.node('GroupQueryAttention',
    [...attnIn, spanIo.pastKey(l), spanIo.pastValue(l), spanIo.seqlensK, spanIo.totalSeqLen, 'cos_cache', 'sin_cache'],
    {
      domain: 'com.microsoft',
      outputs: [`l${l}.attn`, spanIo.presentKey(l), spanIo.presentValue(l)],
      attrs: {
        num_heads: cfg.numHeads,
        kv_num_heads: cfg.numKvHeads,
        do_rotary: 1,
        rotary_interleaved: 0,
        scale: { float: 1 / Math.sqrt(D) },
        // a position attends to local_window_size keys, itself included (as transformers: i - window < j <= i)
        local_window_size: cfg.slidingWindow === null ? -1 : cfg.slidingWindow
      }
    })
  const attnHeads = Dk === D ? attn : unpadHeads(g, `l${l}.attn_unpad`, attn, cfg.numHeads, D, Dk)
  const attnOut = linear(g, `l${l}.o`, attnHeads, tensorRows(w, [[n.o, H]], qDim), fmt)

  // residual add fused with the post-attention norm: outputs (normed, -, -, sum)
  const postNorm = g.floatInit(`l${l}.post_norm`, [H], w.float32(n.postNorm, [H]))
  const [normed2, , , residual] = g.node('SkipSimplifiedLayerNormalization', [attnOut, x, postNorm],
    { domain: 'com.microsoft', outputs: [`l${l}.normed2`, '', '', `l${l}.residual`], attrs: { epsilon: eps } })

  // SiLU-gated MLP with gate and up fused: (2I, H) → split
  const I = cfg.intermediateSize
  const gateUp = linear(g, `l${l}.gate_up`, normed2, tensorRows(w, [[n.gate, I], [n.up, I]], H), fmt)
  const [gate, up] = g.node('Split', [gateUp, g.int64Init(`l${l}.split`, [I, I])], { outputs: 2, attrs: { axis: -1 } })
  const act = g.op('Mul', [gate, g.op('Sigmoid', [gate])])
  const down = linear(g, `l${l}.down`, g.op('Mul', [act, up]), tensorRows(w, [[n.down, H]], I), fmt)
  return g.op('Add', [residual, down], { output: outName })
}

/**
 * x @ W^T for W in HF layout (n, k), kept in that layout: FusedMatMul with transB, so nothing is
 * transposed anywhere. f32 and f16 storage compute in f32, with no copy of the weights in memory
 * besides the one the kernel reads:
 * - f32 from an F32 checkpoint: the checkpoint's own bytes, mapped by onnxruntime where they lie
 *   (external data). A matrix made of several tensors (q, k, v) is one matmul per tensor with the
 *   outputs side by side (stacking them into one matrix would be a copy; the kernel then sums in
 *   an order that can differ from the stacked one's in the last bits).
 * - otherwise (F16/BF16 checkpoints, f16 storage): W is an f32 constant produced when the graph
 *   is written — 16-bit values widened exactly, rounded to f16 first for f16 storage of a
 *   checkpoint that is not F16 — into the span cache (or a scratch file), which onnxruntime then
 *   maps and pre-packs like an F32 checkpoint's weights (same kernels, batchable, no Cast to fold).
 * int8/int4 go through MatMulNBits with the quantized weights in the graph.
 */
export function linear (g: GraphBuilder, name: string, x: string, src: MatrixSource, fmt: WeightFormat): string {
  const { n, k } = src
  if (fmt === 'int8' || fmt === 'int4') {
    const bits: QuantBits = fmt === 'int8' ? 8 : 4
    const blockSize = k % 32 === 0 ? 32 : k % 16 === 0 ? 16 : 0
    if (blockSize === 0) return linear(g, name, x, src, 'f32')
    const q = quantizedMatrix(src, bits, blockSize)
    const b = g.initializer(`${name}.qweight`, DataType.UINT8, [n, k / blockSize, (blockSize * bits) / 8], q.packed)
    const s = g.initializer(`${name}.scales`, DataType.FLOAT, [(n * k) / blockSize], q.scales)
    // accuracy_level 4 = int8 activations: onnxruntime's fast CPU kernels for both 4- and 8-bit
    // weights (level 0 sends 8-bit weights down a slow dequantizing path: ~13x slower decode)
    return g.op('MatMulNBits', [x, b, s], { domain: 'com.microsoft', attrs: { K: k, N: n, bits, block_size: blockSize, accuracy_level: 4 } })
  }
  const matmul = (weight: string): string => g.op('FusedMatMul', [x, weight], { domain: 'com.microsoft', attrs: { transB: 1 } })
  const parts = src.parts()
  if (fmt === 'f32' && parts.every((p) => p.dtype === 'F32' && p.place !== undefined)) {
    const outs = parts.map((p, i) => matmul(g.initializer(`${name}.weight.${i}`, DataType.FLOAT, [p.rows, k], (p.place as () => FileBytes)())))
    return outs.length === 1 ? outs[0] : g.op('Concat', outs, { attrs: { axis: -1 } })
  }
  return matmul(g.initializer(`${name}.weight`, DataType.FLOAT, [n, k], float32Bytes(src, fmt === 'f16')))
}

/** RMSNorm over each head of x (B, seq, heads·D) with a (D) weight. */
function headNorm (g: GraphBuilder, name: string, x: string, heads: number, D: number, weight: Float32Array, eps: number): string {
  const perHead = g.op('Reshape', [x, g.int64Init(`${name}.heads`, [0, 0, heads, D])])
  const normed = g.op('SimplifiedLayerNormalization', [perHead, g.floatInit(`${name}.weight`, [D], weight)], { attrs: { axis: -1, epsilon: { float: eps }, stash_type: 1 } })
  return g.op('Reshape', [normed, g.int64Init(`${name}.flat`, [0, 0, heads * D])])
}

/** (B, seq, heads·D) → (B, seq, heads·Dk): each rotary half of each head zero-padded from D/2 to Dk/2. */
function padHeads (g: GraphBuilder, name: string, x: string, heads: number, D: number, Dk: number): string {
  const halves = g.op('Reshape', [x, g.int64Init(`${name}.halves`, [0, 0, heads, 2, D / 2])])
  const padded = g.op('Pad', [halves, g.int64Init(`${name}.pads`, [0, 0, 0, 0, 0, 0, 0, 0, 0, (Dk - D) / 2])], { attrs: { mode: 'constant' } })
  return g.op('Reshape', [padded, g.int64Init(`${name}.flat`, [0, 0, heads * Dk])])
}

/** Inverse of padHeads: keeps the first D/2 lanes of each half of each head. */
function unpadHeads (g: GraphBuilder, name: string, x: string, heads: number, D: number, Dk: number): string {
  const halves = g.op('Reshape', [x, g.int64Init(`${name}.halves`, [0, 0, heads, 2, Dk / 2])])
  const kept = g.op('Slice', [halves, g.int64Init(`${name}.starts`, [0]), g.int64Init(`${name}.ends`, [D / 2]), g.int64Init(`${name}.axes`, [-1])])
  return g.op('Reshape', [kept, g.int64Init(`${name}.flat`, [0, 0, heads * D])])
}

/** (rows, cols) → (rows, width) with zero columns appended. */
function padColumns (t: Float32Array, rows: number, cols: number, width: number): Float32Array {
  if (width === cols) return t
  const out = new Float32Array(rows * width)
  for (let r = 0; r < rows; r++) out.set(t.subarray(r * cols, (r + 1) * cols), r * width)
  return out
}

function concatRows (parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0))
  let off = 0
  for (const p of parts) { out.set(p, off); off += p.length }
  return out
}
