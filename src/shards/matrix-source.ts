// Weight matrices on their way from the checkpoint into a graph. A MatrixSource names the
// tensors whose rows make up one (n, k) matrix in Hugging Face layout (q, k and v stacked, say);
// nothing is read until the graph is written, and then one tensor at a time, converted straight
// to the graph's storage format. Rows are concatenated as they lie in the file: no transposes.
import type { FileBytes, LazyBytes } from './onnx/builder.ts'
import { toFloat16Bytes, toFloat32, type RawTensor, type StDtype } from './safetensors.ts'
import { quantizeMatrix, type QuantBits } from './quantize.ts'
import type { ModelWeights } from './weights.ts'

export interface MatrixSource {
  /** rows (output features) */
  n: number
  /** columns (input features) */
  k: number
  /** the checkpoint dtype of every part, or null when they differ */
  dtype: StDtype | null
  /** the parts, in row order, each read when asked for; their rows add up to n */
  parts: () => Iterable<{ rows: number, tensor: RawTensor }>
  /** where the parts lie in the checkpoint, for onnxruntime to read them there (absent: in memory) */
  places?: () => Array<{ rows: number } & FileBytes>
}

/** The rows of `parts` ([tensor name, rows]) of width k, stacked. Shapes are checked now, data read later. */
export function tensorRows (w: ModelWeights, parts: Array<[string, number]>, k: number): MatrixSource {
  const dtypes = new Set(parts.map(([name, rows]) => w.entry(name, [rows, k]).dtype))
  return {
    n: parts.reduce((a, [, rows]) => a + rows, 0),
    k,
    dtype: dtypes.size === 1 ? [...dtypes][0] : null,
    * parts () {
      for (const [name, rows] of parts) yield { rows, tensor: w.raw(name, [rows, k]) }
    },
    places: () => parts.map(([name, rows]) => ({ rows, ...w.location(name, [rows, k]) }))
  }
}

/** A matrix already in memory (tests, synthetic weights). */
export function arrayMatrix (data: Float32Array, n: number, k: number): MatrixSource {
  if (data.length !== n * k) throw new RangeError(`matrix of ${data.length} values is not ${n} × ${k}`)
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return { n, k, dtype: 'F32', * parts () { yield { rows: n, tensor: { dtype: 'F32', shape: [n, k], bytes } } } }
}

/** f32 values of a raw tensor: a view when it already is aligned f32, else a decoded copy. */
function float32Of (t: RawTensor): Float32Array {
  if (t.dtype === 'F32' && t.bytes.byteOffset % 4 === 0) return new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4)
  return toFloat32(t)
}

function bytesOf (a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

/** The matrix as little-endian f32 (exact for F32, F16 and BF16 checkpoints). */
export function asFloat32Bytes (m: MatrixSource): LazyBytes {
  return {
    byteLength: m.n * m.k * 4,
    produce: (sink) => {
      for (const { tensor } of m.parts()) sink(tensor.dtype === 'F32' ? tensor.bytes : bytesOf(toFloat32(tensor)))
    }
  }
}

/** The matrix as little-endian f16 (F16 checkpoints pass through untouched; others are rounded). */
export function asFloat16Bytes (m: MatrixSource): LazyBytes {
  return {
    byteLength: m.n * m.k * 2,
    produce: (sink) => {
      for (const { tensor } of m.parts()) sink(tensor.dtype === 'F16' ? tensor.bytes : toFloat16Bytes(float32Of(tensor)))
    }
  }
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
    for (const { rows, tensor } of m.parts()) {
      const q = quantizeMatrix(float32Of(tensor), rows, m.k, bits, blockSize)
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
