// safetensors reader: parses the header and reads single tensors by offset, so a peer reads
// only the bytes of the tensors its span needs.
//
// Layout: | header_len u64 LE | header JSON (header_len bytes) | data |
// header: { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, "__metadata__": {...} }
// Offsets are relative to the start of the data section.
import { openSync, readSync, closeSync, fstatSync } from 'node:fs'
import { endianness } from 'node:os'
import { SafetensorsError } from './errors.ts'

export type StDtype = 'F32' | 'F16' | 'BF16'
const DTYPE_BYTES: Record<StDtype, number> = { F32: 4, F16: 2, BF16: 2 }
/** Headers above this size are refused (real ones are well under 1 MiB even for 70B shards). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024
// tensors are decoded by viewing their bytes as typed arrays, which use the host's byte order
if (endianness() !== 'LE') throw new Error('strata reads safetensors on little-endian hosts only')

export interface TensorEntry {
  name: string
  dtype: StDtype
  shape: number[]
  /** absolute byte offset in the file */
  offset: number
  byteLength: number
}

export interface RawTensor {
  dtype: StDtype
  shape: number[]
  bytes: Uint8Array
}

export class SafetensorsFile {
  readonly entries: ReadonlyMap<string, TensorEntry>
  /** Bytes read from disk so far, header included (lets tests prove lazy reading). */
  bytesRead = 0
  private fd: number | null

  constructor (readonly file: string) {
    try {
      this.fd = openSync(file, 'r')
    } catch (err) {
      throw new SafetensorsError(file, `cannot open: ${(err as Error).message}`)
    }
    try {
      this.entries = this.readHeader(fstatSync(this.fd).size)
    } catch (err) {
      this.close()
      throw err
    }
  }

  has (name: string): boolean {
    return this.entries.has(name)
  }

  read (name: string): RawTensor {
    const e = this.entries.get(name)
    if (e === undefined) throw new SafetensorsError(this.file, `no tensor named ${name}`)
    const bytes = this.readAt(e.offset, e.byteLength)
    return { dtype: e.dtype, shape: e.shape, bytes }
  }

  /** Reads a tensor's raw bytes into `into`, which must be exactly its size (no allocation). */
  readInto (name: string, into: Uint8Array): void {
    const e = this.entries.get(name)
    if (e === undefined) throw new SafetensorsError(this.file, `no tensor named ${name}`)
    if (into.byteLength !== e.byteLength) throw new RangeError(`${name}: a ${into.byteLength}-byte buffer for a ${e.byteLength}-byte tensor`)
    this.readAt(e.offset, e.byteLength, into)
  }

  close (): void {
    if (this.fd !== null) closeSync(this.fd)
    this.fd = null
  }

  private readAt (offset: number, length: number, out: Uint8Array = new Uint8Array(length)): Uint8Array {
    if (this.fd === null) throw new SafetensorsError(this.file, 'file is closed')
    let done = 0
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done)
      if (n === 0) throw new SafetensorsError(this.file, `truncated: wanted ${length} bytes at offset ${offset}`)
      done += n
    }
    this.bytesRead += length
    return out
  }

  private readHeader (fileSize: number): Map<string, TensorEntry> {
    if (fileSize < 8) throw new SafetensorsError(this.file, `truncated: ${fileSize} bytes is shorter than the 8-byte header length`)
    const lenBytes = this.readAt(0, 8)
    const headerLen = Number(new DataView(lenBytes.buffer).getBigUint64(0, true))
    if (headerLen > MAX_HEADER_BYTES) throw new SafetensorsError(this.file, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`)
    if (8 + headerLen > fileSize) throw new SafetensorsError(this.file, `truncated: header claims ${headerLen} bytes but the file has ${fileSize - 8} after the length`)
    let header: unknown
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(this.readAt(8, headerLen)))
    } catch (err) {
      throw new SafetensorsError(this.file, `header is not valid JSON: ${(err as Error).message}`)
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new SafetensorsError(this.file, 'header must be a JSON object')
    const dataStart = 8 + headerLen
    const dataSize = fileSize - dataStart
    const entries = new Map<string, TensorEntry>()
    for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') continue
      entries.set(name, this.parseEntry(name, v, dataStart, dataSize))
    }
    return entries
  }

  private parseEntry (name: string, v: unknown, dataStart: number, dataSize: number): TensorEntry {
    const bad = (msg: string): never => { throw new SafetensorsError(this.file, `tensor ${name}: ${msg}`) }
    if (v === null || typeof v !== 'object') return bad('entry must be an object')
    const { dtype, shape, data_offsets: offsets } = v as Record<string, unknown>
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) return bad(`dtype ${JSON.stringify(dtype)} is not supported (F32, F16, BF16)`)
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return bad('shape must be a list of non-negative integers')
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) return bad('data_offsets must be [begin, end]')
    const [begin, end] = offsets as [number, number]
    if (end < begin) return bad(`data_offsets [${begin}, ${end}] end before begin`)
    if (end > dataSize) return bad(`data_offsets end ${end} is past the end of the data (${dataSize} bytes): file truncated or header lies`)
    const expected = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype as StDtype]
    if (expected !== end - begin) return bad(`shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`)
    return { name, dtype: dtype as StDtype, shape: shape as number[], offset: dataStart + begin, byteLength: end - begin }
  }
}

/** Decodes raw F32/F16/BF16 little-endian bytes into a Float32Array (a copy; exact for all three). */
export function toFloat32 (t: RawTensor): Float32Array {
  const n = t.bytes.byteLength / DTYPE_BYTES[t.dtype]
  const out = new Float32Array(n)
  if (t.dtype === 'F32') {
    new Uint8Array(out.buffer).set(t.bytes)
    return out
  }
  widen16(t.dtype, halfWords(t.bytes), out)
  return out
}

/** Writes 16-bit values (F16 or BF16 bit patterns) into `out` as f32, exactly. */
export function widen16 (dtype: 'F16' | 'BF16', src: Uint16Array, out: Float32Array): void {
  if (out.length !== src.length) throw new RangeError(`widening ${src.length} values into ${out.length}`)
  const u32 = new Uint32Array(out.buffer, out.byteOffset, out.length)
  const n = src.length
  if (dtype === 'BF16') {
    for (let i = 0; i < n; i++) u32[i] = src[i] << 16
  } else {
    const lut = halfLut()
    for (let i = 0; i < n; i++) u32[i] = lut[src[i]]
  }
}

/** Rounds every value of `data` to the nearest f16 (ties to even), in place: f16 storage, f32 compute. */
export function roundToHalf (data: Float32Array): void {
  const lut = halfLut()
  const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length)
  for (let i = 0; i < data.length; i++) u32[i] = lut[floatToHalf(data[i])]
}

/** The 16-bit words of `bytes` (little-endian host; copies only when `bytes` is misaligned). */
function halfWords (bytes: Uint8Array): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2)
  return new Uint16Array(bytes.slice().buffer)
}

let lutBits: Uint32Array | null = null
/** float32 bit patterns of all 65536 f16 values: decoding is one table lookup per element. */
function halfLut (): Uint32Array {
  if (lutBits === null) {
    const f = new Float32Array(65536)
    for (let h = 0; h < 65536; h++) f[h] = halfToFloat(h)
    lutBits = new Uint32Array(f.buffer)
  }
  return lutBits
}

export function halfToFloat (h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * frac * 2 ** -24
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN
  return sign * (1 + frac / 1024) * 2 ** (exp - 15)
}

const scratchF32 = new Float32Array(1)
const scratchU32 = new Uint32Array(scratchF32.buffer)

/** IEEE binary16 with round-to-nearest-even (used when writing F16 model files and f16 graphs). */
export function floatToHalf (value: number): number {
  scratchF32[0] = value
  const x = scratchU32[0]
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  let mant = x & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0)
  let e = exp - 127 + 15
  if (e >= 31) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    mant |= 0x800000
    const shift = 14 - e
    const half = 1 << (shift - 1)
    let r = mant >> shift
    const rest = mant & ((1 << shift) - 1)
    if (rest > half || (rest === half && (r & 1) === 1)) r++
    return sign | r
  }
  let r = mant >> 13
  const rest = mant & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && (r & 1) === 1)) {
    r++
    if (r === 0x400) { r = 0; e++ ; if (e >= 31) return sign | 0x7c00 }
  }
  return sign | (e << 10) | r
}
