// Weight matrices on their way from the checkpoint into a session. A MatrixSource names the
// tensors whose rows make up one (n, k) matrix in Hugging Face layout (q, k and v stacked, say);
// nothing is read until the session is created, and then one tensor at a time, straight into its
// place in the matrix. Rows are stacked as they lie in the file: no transposes.
import type { FileBytes, LazyBytes } from './onnx/builder.ts'
import { roundToHalf, widen16, type StDtype } from './safetensors.ts'
import { quantizeMatrix, type QuantBits } from './quantize.ts'
import type { ModelWeights } from './weights.ts'

/** One tensor of a matrix: `rows` rows of the matrix's width, stored as `dtype`. */
export interface MatrixPart {
  rows: number
  dtype: StDtype
  /** reads the part's raw little-endian bytes into `into` (exactly its size) */
  readInto: (into: Uint8Array) => void
  /** where the part lies in the checkpoint, for onnxruntime to map it there (absent: in memory) */
  place?: () => FileBytes
}

export interface MatrixSource {
  /** rows (output features) */
  n: number
  /** columns (input features) */
  k: number
  /** the parts in row order; their rows add up to n */
  parts: () => MatrixPart[]
}

/** Reusable memory for 16-bit parts on their way to f32: one buffer, grown to the largest part. */
/** Reusable memory to stage a part's 16-bit values in while widening them (valid until the next call). */
export class Scratch {
  private buf = new ArrayBuffer(0)

  bytes (n: number): Uint8Array {
    if (this.buf.byteLength < n) this.buf = new ArrayBuffer(n)
    return new Uint8Array(this.buf, 0, n)
  }
}

const DTYPE_BYTES: Record<StDtype, number> = { F32: 4, F16: 2, BF16: 2 }

/** The rows of `parts` ([tensor name, rows]) of width k, stacked. Shapes are checked now, data read later. */
export function tensorRows (w: ModelWeights, parts: Array<[string, number]>, k: number): MatrixSource {
  const entries = parts.map(([name, rows]) => ({ name, rows, dtype: w.entry(name, [rows, k]).dtype }))
  return {
    n: parts.reduce((a, [, rows]) => a + rows, 0),
    k,
    parts: () => entries.map(({ name, rows, dtype }) => ({
      rows,
      dtype,
      readInto: (into: Uint8Array) => w.readInto(name, into, [rows, k]),
      place: () => w.location(name, [rows, k])
    }))
  }
}

/** A matrix already in memory (tests, synthetic weights). */
export function arrayMatrix (data: Float32Array, n: number, k: number): MatrixSource {
  if (data.length !== n * k) throw new RangeError(`matrix of ${data.length} values is not ${n} × ${k}`)
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return { n, k, parts: () => [{ rows: n, dtype: 'F32', readInto: (into) => into.set(bytes) }] }
}

/** Writes one part's values as f32 into `out` (rows·k values): F32 read in place, F16/BF16 widened exactly. */
function partInto (p: MatrixPart, out: Float32Array, scratch: Scratch): void {
  if (p.dtype === 'F32') {
    p.readInto(new Uint8Array(out.buffer, out.byteOffset, out.byteLength))
    return
  }
  const raw = scratch.bytes(out.length * DTYPE_BYTES[p.dtype])
  p.readInto(raw)
  widen16(p.dtype, new Uint16Array(raw.buffer, raw.byteOffset, out.length), out)
}

/**
 * The matrix as little-endian f32 bytes produced when the graph is written, part by part: F32
 * as read, F16/BF16 widened exactly; with `roundToF16`, rounded to f16 (ties to even) first —
 * f16 storage of a checkpoint that is not F16 (an F16 one is exact already).
 */
export function float32Bytes (m: MatrixSource, roundToF16: boolean): LazyBytes {
  return {
    byteLength: m.n * m.k * 4,
    produce: (sink) => {
      const scratch = new Scratch()
      for (const p of m.parts()) {
        const rows = new Float32Array(p.rows * m.k)
        partInto(p, rows, scratch)
        if (roundToF16 && p.dtype !== 'F16') roundToHalf(rows)
        sink(bytesOf(rows))
      }
    }
  }
}

function bytesOf (a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

/**
 * The matrix block-quantized for MatMulNBits, part by part (quantization is per row, so the parts
 * quantize independently to the same bytes as the whole). `packed` quantizes and keeps the small
 * scales for `scales`, which the graph writes right after; asked first, `scales` quantizes itself.
 */
export function quantizedMatrix (m: MatrixSource, bits: QuantBits, blockSize: number): { packed: LazyBytes, scales: LazyBytes } {
  const blocksPerRow = m.k / blockSize
  let pending: Float32Array[] | null = null
  const quantizeParts = (onPacked: (b: Uint8Array) => void): Float32Array[] => {
    const scales: Float32Array[] = []
    const scratch = new Scratch()
    for (const p of m.parts()) {
      const values = new Float32Array(p.rows * m.k)
      partInto(p, values, scratch)
      const q = quantizeMatrix(values, p.rows, m.k, bits, blockSize)
      onPacked(q.packed)
      scales.push(q.scales)
    }
    return scales
  }
  return {
    packed: {
      byteLength: (m.n * blocksPerRow * blockSize * bits) / 8,
      produce: (sink) => { pending = quantizeParts(sink) }
    },
    scales: {
      byteLength: m.n * blocksPerRow * 4,
      produce: (sink) => {
        const scales = pending ?? quantizeParts(() => {})
        pending = null
        for (const s of scales) sink(bytesOf(s))
      }
    }
  }
}
