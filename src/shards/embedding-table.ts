// The client's token embedding table, stored in the head's weight format: f32 as read, f16
// rounded, or int8/int4 blocks as the LM head's MatMulNBits stores them (what llama.cpp's Q8_0 /
// Q4_0 files do with token_embd). Rows come out as f32; only the rows of the tokens read are
// widened.
import { floatToHalf, halfToFloat } from './safetensors.ts'
import { quantizeMatrix, dequantizeRow, type QuantizedMatrix } from './quantize.ts'
import type { WeightFormat } from './span-graph.ts'

export interface EmbeddingTable {
  /** bytes the table holds */
  readonly bytes: number
  /** writes the (hidden) row of `token` into out[at, at + hidden) */
  row: (token: number, out: Float32Array, at: number) => void
}

/** Stores the (vocab, hidden) f32 table `w` in `format`. */
export function embeddingTable (w: Float32Array, vocab: number, hidden: number, format: WeightFormat): EmbeddingTable {
  if (format === 'f32') {
    return { bytes: w.byteLength, row: (t, out, at) => { out.set(w.subarray(t * hidden, (t + 1) * hidden), at) } }
  }
  if (format === 'f16') {
    const half = new Uint16Array(w.length)
    for (let i = 0; i < w.length; i++) half[i] = floatToHalf(w[i])
    return {
      bytes: half.byteLength,
      row: (t, out, at) => { for (let i = 0; i < hidden; i++) out[at + i] = halfToFloat(half[t * hidden + i]) }
    }
  }
  // the LM head's block size (span-graph's linear): 32, else 16; rows of other widths stay f32
  const blockSize = hidden % 32 === 0 ? 32 : hidden % 16 === 0 ? 16 : 0
  if (blockSize === 0) return embeddingTable(w, vocab, hidden, 'f32')
  const q: QuantizedMatrix = quantizeMatrix(w, vocab, hidden, format === 'int8' ? 8 : 4, blockSize)
  return { bytes: q.packed.byteLength + q.scales.byteLength, row: (t, out, at) => { dequantizeRow(q, t, out, at) } }
}
