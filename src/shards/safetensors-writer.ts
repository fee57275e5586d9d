// Streams tensors into a safetensors file without holding the whole model in memory.
import { openSync, writeSync, closeSync } from 'node:fs'
import type { StDtype } from './safetensors.ts'

export interface TensorPlan {
  name: string
  shape: number[]
  dtype: StDtype
}

const BYTES: Record<StDtype, number> = { F32: 4, F16: 2, BF16: 2 }

export function tensorByteLength (t: TensorPlan): number {
  return t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype]
}

/**
 * Writes `plans` in order; `produce(plan)` returns each tensor's raw little-endian bytes
 * (called once per tensor, in order).
 */
export function writeSafetensors (file: string, plans: TensorPlan[], produce: (t: TensorPlan) => Uint8Array, metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = { __metadata__: metadata }
  let offset = 0
  for (const t of plans) {
    const len = tensorByteLength(t)
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + len] }
    offset += len
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - (json.length % 8)) % 8) // data section 8-byte aligned, as the Rust writer does
  const jsonBytes = new TextEncoder().encode(json)
  const len = new Uint8Array(8)
  new DataView(len.buffer).setBigUint64(0, BigInt(jsonBytes.length), true)
  const fd = openSync(file, 'w')
  try {
    writeSync(fd, len)
    writeSync(fd, jsonBytes)
    for (const t of plans) {
      const bytes = produce(t)
      if (bytes.byteLength !== tensorByteLength(t)) throw new RangeError(`tensor ${t.name}: produced ${bytes.byteLength} bytes, expected ${tensorByteLength(t)}`)
      writeSync(fd, bytes)
    }
  } finally {
    closeSync(fd)
  }
}
