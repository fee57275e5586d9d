// Tensor codec for hidden states on the wire: Float32Array in memory, little-endian f32 or
// IEEE 754 binary16 (f16) bytes on the wire. f16 halves the bytes per hop at ~3 decimal digits of
// precision, which hidden states between blocks tolerate.
import { MalformedFrameError } from './errors.ts'

export type WireDtype = 'f32' | 'f16'
export const WIRE_DTYPES: readonly WireDtype[] = ['f32', 'f16']

/** A hidden-state tensor as carried by `step` and `result`. `dtype` is the wire encoding only. */
export interface WireTensor {
  dtype: WireDtype
  /** (batch, positions, hidden) */
  shape: [number, number, number]
  /** row-major, length = batch * positions * hidden */
  data: Float32Array
}

const BYTES_PER_ELEMENT: Record<WireDtype, number> = { f32: 4, f16: 2 }

// Float32Array views use the host's byte order; the wire is little-endian. On a little-endian
// host (every platform Node ships for in practice) f32 data is copied byte for byte.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

// Scratch cell for reading and writing the bits of single values.
const scratchF32 = new Float32Array(1)
const scratchU32 = new Uint32Array(scratchF32.buffer)

export function isWireDtype (value: unknown): value is WireDtype {
  return value === 'f32' || value === 'f16'
}

export function bytesPerElement (dtype: WireDtype): number {
  return BYTES_PER_ELEMENT[dtype]
}

/** Rounds `value` to float32, then to the nearest f16 (ties to even); returns its 16-bit pattern. */
export function float32ToFloat16Bits (value: number): number {
  scratchF32[0] = value
  return f32BitsToF16Bits(scratchU32[0])
}

/** The float32 value (exact: every f16 is representable) of a 16-bit f16 pattern. */
export function float16BitsToFloat32 (bits: number): number {
  scratchU32[0] = f16BitsToF32Bits(bits & 0xffff)
  return scratchF32[0]
}

/** Encodes `data` as little-endian `dtype` bytes into a new buffer. */
export function encodeTensorData (data: Float32Array, dtype: WireDtype): Uint8Array {
  const out = new Uint8Array(data.length * BYTES_PER_ELEMENT[dtype])
  writeTensorData(data, dtype, out)
  return out
}

/**
 * Encodes `data` into `out`, which must be exactly `data.length * bytesPerElement(dtype)` bytes.
 * `out` may start at any byte offset (frames put the payload right after a variable-size header).
 */
export function writeTensorData (data: Float32Array, dtype: WireDtype, out: Uint8Array): void {
  if (out.length !== data.length * BYTES_PER_ELEMENT[dtype]) {
    throw new RangeError(`output is ${out.length} bytes, ${data.length} ${dtype} values need ${data.length * BYTES_PER_ELEMENT[dtype]}`)
  }
  if (dtype === 'f32' && HOST_IS_LITTLE_ENDIAN) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    return
  }
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  if (dtype === 'f32') {
    for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true)
    return
  }
  // A Float32Array is always 4-byte aligned, so its bits can be read in place.
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length)
  for (let i = 0; i < bits.length; i++) view.setUint16(i * 2, f32BitsToF16Bits(bits[i]), true)
}

/**
 * Decodes little-endian `dtype` bytes into a new Float32Array. `bytes` may sit at any offset of
 * any buffer: values are copied out, never viewed in place, so the result owns aligned memory and
 * does not alias the (often reused) network buffer.
 */
export function decodeTensorData (bytes: Uint8Array, dtype: WireDtype): Float32Array {
  const size = BYTES_PER_ELEMENT[dtype]
  if (bytes.length % size !== 0) {
    throw new MalformedFrameError(`tensor payload of ${bytes.length} bytes is not a whole number of ${dtype} values`)
  }
  const out = new Float32Array(bytes.length / size)
  if (dtype === 'f32' && HOST_IS_LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes)
    return out
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (dtype === 'f32') {
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true)
    return out
  }
  const bits = new Uint32Array(out.buffer)
  for (let i = 0; i < out.length; i++) bits[i] = f16BitsToF32Bits(view.getUint16(i * 2, true))
  return out
}

// float32: sign 1 | exponent 8 (bias 127) | mantissa 23
// float16: sign 1 | exponent 5 (bias 15)  | mantissa 10
// Rebias: f16 exponent = f32 exponent - 127 + 15 = f32 exponent - 112.

function f32BitsToF16Bits (x: number): number {
  const sign = (x >>> 16) & 0x8000
  const exponent = (x >>> 23) & 0xff
  const mantissa = x & 0x7fffff
  if (exponent === 0xff) {
    // Inf stays Inf. NaN keeps its top payload bits and is forced quiet, so a NaN whose payload
    // lives only in the low 13 bits does not turn into Inf.
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13)
  }
  const halfExponent = exponent - 112
  if (halfExponent >= 0x1f) return sign | 0x7c00 // beyond 65520: overflows to Inf
  if (halfExponent <= 0) return sign | subnormalF16(mantissa, halfExponent)
  // Normal: drop 13 mantissa bits, rounding to nearest even. A carry out of the mantissa
  // correctly bumps the exponent (and 65504 + more than half an ulp becomes Inf).
  const half = (halfExponent << 10) | (mantissa >>> 13)
  return sign | (half + roundingIncrement(mantissa, 13, half))
}

/** f16 subnormal (or zero) bits for a float32 whose rebiased exponent is <= 0. */
function subnormalF16 (mantissa: number, halfExponent: number): number {
  // Below half the smallest subnormal (2^-25) everything rounds to zero; float32 subnormals too.
  if (halfExponent < -10) return 0
  const significand = mantissa | 0x800000 // restore the implicit leading 1
  const shift = 14 - halfExponent // 13 mantissa bits plus one per step below the normal range
  const half = significand >>> shift
  // Rounding up from the largest subnormal yields 0x0400, the smallest normal: still correct.
  return half + roundingIncrement(significand, shift, half)
}

/** 1 if dropping the low `shift` bits of `value` must round `kept` up (round half to even). */
function roundingIncrement (value: number, shift: number, kept: number): number {
  const dropped = value & ((1 << shift) - 1)
  const halfway = 1 << (shift - 1)
  return dropped > halfway || (dropped === halfway && (kept & 1) === 1) ? 1 : 0
}

function f16BitsToF32Bits (h: number): number {
  const sign = (h & 0x8000) << 16
  const exponent = (h >>> 10) & 0x1f
  const mantissa = h & 0x3ff
  if (exponent === 0x1f) return sign | 0x7f800000 | (mantissa << 13) // Inf, NaN
  if (exponent !== 0) return sign | ((exponent + 112) << 23) | (mantissa << 13)
  if (mantissa === 0) return sign // ±0
  // Subnormal f16 = mantissa * 2^-24: normalise, since float32 represents it as a normal number.
  let normalized = mantissa
  let f32Exponent = 113
  while ((normalized & 0x400) === 0) {
    normalized <<= 1
    f32Exponent--
  }
  return sign | (f32Exponent << 23) | ((normalized & 0x3ff) << 13)
}
