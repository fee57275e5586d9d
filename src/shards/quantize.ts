// Weight-only block quantization in the layout of onnxruntime's com.microsoft MatMulNBits:
// B is (N, K/blockSize, blockSize*bits/8) uint8, scales (N*K/blockSize) f32, symmetric around
// the op's default zero point (8 for 4-bit, 128 for 8-bit), so no zero_points input is needed.

export type QuantBits = 4 | 8

/** bump whenever the bytes quantizeMatrix produces change: cached quantized spans are then rebuilt */
export const QUANTIZER_VERSION = 1

export interface QuantizedMatrix {
  bits: QuantBits
  blockSize: number
  n: number
  k: number
  /** (n, k/blockSize, blockSize*bits/8) */
  packed: Uint8Array
  /** (n * k/blockSize) */
  scales: Float32Array
}

/** Quantizes an (n, k) row-major matrix — the HF `[out, in]` layout — row by row in blocks along k. */
export function quantizeMatrix (w: Float32Array, n: number, k: number, bits: QuantBits, blockSize = 32): QuantizedMatrix {
  if (k % blockSize !== 0) throw new RangeError(`cannot quantize: K=${k} is not a multiple of the block size ${blockSize}`)
  const blocksPerRow = k / blockSize
  const blobSize = (blockSize * bits) / 8
  const packed = new Uint8Array(n * blocksPerRow * blobSize)
  const scales = new Float32Array(n * blocksPerRow)
  const qmax = bits === 4 ? 7 : 127
  const zero = bits === 4 ? 8 : 128
  const levels = bits === 4 ? 15 : 255
  const q = new Uint8Array(blockSize)
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocksPerRow; b++) {
      const base = row * k + b * blockSize
      let absmax = 0
      for (let i = 0; i < blockSize; i++) absmax = Math.max(absmax, Math.abs(w[base + i]))
      const scale = absmax === 0 ? 1 : absmax / qmax
      scales[row * blocksPerRow + b] = scale
      for (let i = 0; i < blockSize; i++) q[i] = Math.min(levels, Math.max(0, Math.round(w[base + i] / scale) + zero))
      const out = (row * blocksPerRow + b) * blobSize
      if (bits === 8) packed.set(q, out)
      else for (let i = 0; i < blockSize; i += 2) packed[out + i / 2] = q[i] | (q[i + 1] << 4)
    }
  }
  return { bits, blockSize, n, k, packed, scales }
}

/** The matrix MatMulNBits will effectively multiply by, (n, k); used to measure quantization error. */
export function dequantizeMatrix (m: QuantizedMatrix): Float32Array {
  const out = new Float32Array(m.n * m.k)
  for (let row = 0; row < m.n; row++) dequantizeRow(m, row, out, row * m.k)
  return out
}

/** Row `row` of the matrix MatMulNBits multiplies by, written into out[at, at + k). */
export function dequantizeRow (m: QuantizedMatrix, row: number, out: Float32Array, at: number): void {
  const blocksPerRow = m.k / m.blockSize
  const blobSize = (m.blockSize * m.bits) / 8
  const zero = m.bits === 4 ? 8 : 128
  for (let b = 0; b < blocksPerRow; b++) {
    const scale = m.scales[row * blocksPerRow + b]
    const src = (row * blocksPerRow + b) * blobSize
    for (let i = 0; i < m.blockSize; i++) {
      const q = m.bits === 8 ? m.packed[src + i] : (m.packed[src + (i >> 1)] >> ((i & 1) * 4)) & 0xf
      out[at + b * m.blockSize + i] = (q - zero) * scale
    }
  }
}
