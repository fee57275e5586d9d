import assert from 'node:assert/strict'
import {
  MalformedFrameError,
  decodeTensorData,
  encodeTensorData,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  writeTensorData
} from '../../src/protocol/index.ts'

const f32Bits = (value: number): number => new Uint32Array(new Float32Array([value]).buffer)[0]
const isNaNBits = (h: number): boolean => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0

describe('protocol/tensor: f16 conversion', () => {
  const known: Array<[string, number, number]> = [
    ['0', 0, 0x0000],
    ['-0', -0, 0x8000],
    ['1', 1, 0x3c00],
    ['-2', -2, 0xc000],
    ['0.5', 0.5, 0x3800],
    ['0.1 (rounded)', 0.1, 0x2e66],
    ['65504 (largest finite)', 65504, 0x7bff],
    ['65519 (rounds down to 65504)', 65519, 0x7bff],
    ['65520 (halfway to 65536: ties to even = Inf)', 65520, 0x7c00],
    ['1e6 (overflow)', 1e6, 0x7c00],
    ['-1e6 (overflow)', -1e6, 0xfc00],
    ['2^-14 = 6.1035e-5 (smallest normal)', 2 ** -14, 0x0400],
    ['6.1e-5 (just below the smallest normal)', 6.1e-5, 0x03ff],
    ['1023 * 2^-24 (largest subnormal)', 1023 * 2 ** -24, 0x03ff],
    ['2^-24 = 5.96e-8 (smallest subnormal)', 2 ** -24, 0x0001],
    ['5.96e-8 (rounds to the smallest subnormal)', 5.96e-8, 0x0001],
    ['-2^-24', -(2 ** -24), 0x8001],
    ['2^-25 (halfway to the smallest subnormal: ties to even = 0)', 2 ** -25, 0x0000],
    ['just above 2^-25 (rounds up)', 2 ** -25 * (1 + 2 ** -20), 0x0001],
    ['3 * 2^-25 (tie between subnormals 1 and 2: to even)', 3 * 2 ** -25, 0x0002],
    ['5 * 2^-25 (tie between subnormals 2 and 3: to even)', 5 * 2 ** -25, 0x0002],
    ['2^-26 (underflow)', 2 ** -26, 0x0000],
    ['float32 subnormal', 1e-40, 0x0000],
    ['1 + 2^-11 (tie: to even = 1)', 1 + 2 ** -11, 0x3c00],
    ['1 + 3 * 2^-11 (tie: to even = 1 + 2^-9)', 1 + 3 * 2 ** -11, 0x3c02],
    ['1 + 2^-11 + 2^-20 (above the tie: up)', 1 + 2 ** -11 + 2 ** -20, 0x3c01],
    ['2047.5 (tie, mantissa carry to 2048)', 2047.5, 0x6800],
    ['Infinity', Infinity, 0x7c00],
    ['-Infinity', -Infinity, 0xfc00]
  ]
  for (const [name, value, bits] of known) {
    it(`float32ToFloat16Bits(${name}) = 0x${bits.toString(16).padStart(4, '0')}`, () => {
      assert.equal(float32ToFloat16Bits(value), bits)
    })
  }

  it('maps NaN to a NaN (never to Inf), keeping the sign', () => {
    assert.ok(isNaNBits(float32ToFloat16Bits(NaN)))
    // NaN whose payload sits only in the low 13 bits, which f16 drops
    const lowPayloadNaN = new Float32Array(new Uint32Array([0xff800001]).buffer)[0]
    const h = float32ToFloat16Bits(lowPayloadNaN)
    assert.ok(isNaNBits(h))
    assert.equal(h & 0x8000, 0x8000)
  })

  it('decodes known bit patterns', () => {
    assert.equal(float16BitsToFloat32(0x3c00), 1)
    assert.equal(float16BitsToFloat32(0x7bff), 65504)
    assert.equal(float16BitsToFloat32(0x0001), 2 ** -24)
    assert.equal(float16BitsToFloat32(0x03ff), 1023 * 2 ** -24)
    assert.equal(float16BitsToFloat32(0x0400), 2 ** -14)
    assert.ok(Object.is(float16BitsToFloat32(0x8000), -0))
    assert.equal(float16BitsToFloat32(0x7c00), Infinity)
    assert.equal(float16BitsToFloat32(0xfc00), -Infinity)
    assert.ok(Number.isNaN(float16BitsToFloat32(0x7e00)))
  })

  it('round-trips every one of the 65536 f16 bit patterns (NaNs stay NaN)', () => {
    for (let h = 0; h <= 0xffff; h++) {
      const back = float32ToFloat16Bits(float16BitsToFloat32(h))
      if (isNaNBits(h)) assert.ok(isNaNBits(back), `0x${h.toString(16)}`)
      else assert.equal(back, h, `0x${h.toString(16)}`)
    }
  })

  it('rounds random float32 values to the nearest f16, ties to even', () => {
    let seed = 12345
    const random32 = (): number => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed }
    const scratch = new Uint32Array(1)
    const asFloat = new Float32Array(scratch.buffer)
    for (let i = 0; i < 20000; i++) {
      // exponents around the f16 range, so normals, subnormals and overflow are all exercised
      scratch[0] = (random32() & 0x807fffff) | ((random32() % 60 + 88) << 23)
      const x = asFloat[0]
      const h = float32ToFloat16Bits(x)
      if (Math.abs(x) >= 65520) {
        assert.equal(h & 0x7fff, 0x7c00, `${x} should overflow to Inf`)
        continue
      }
      const err = Math.abs(float16BitsToFloat32(h) - x)
      // neighbours in magnitude (same sign)
      for (const n of [(h & 0x7fff) - 1, (h & 0x7fff) + 1]) {
        if (n < 0 || n > 0x7bff) continue
        const nErr = Math.abs(float16BitsToFloat32(n | (h & 0x8000)) - x)
        assert.ok(err < nErr || (err === nErr && (h & 1) === 0), `${x} (0x${f32Bits(x).toString(16)}) -> 0x${h.toString(16)}`)
      }
    }
  })
})

describe('protocol/tensor: encode/decode', () => {
  const values = new Float32Array([0, -0, 1, -1.5, 65504, 2 ** -24, 3.25, Infinity, -Infinity, 1e-3])

  it('writes little-endian bytes', () => {
    assert.deepEqual([...encodeTensorData(new Float32Array([1]), 'f32')], [0x00, 0x00, 0x80, 0x3f])
    assert.deepEqual([...encodeTensorData(new Float32Array([1, -2]), 'f16')], [0x00, 0x3c, 0x00, 0xc0])
  })

  it('round-trips f32 exactly, including -0, Inf and NaN', () => {
    const data = new Float32Array([...values, NaN])
    const back = decodeTensorData(encodeTensorData(data, 'f32'), 'f32')
    assert.deepEqual(new Uint32Array(back.buffer), new Uint32Array(data.buffer))
  })

  it('round-trips values representable in f16 exactly', () => {
    const back = decodeTensorData(encodeTensorData(values.subarray(0, 9), 'f16'), 'f16')
    assert.deepEqual([...back], [...values.subarray(0, 9)])
    assert.ok(Object.is(back[1], -0))
  })

  for (const dtype of ['f32', 'f16'] as const) {
    it(`decodes ${dtype} from unaligned offsets without aliasing the input`, () => {
      const bytes = encodeTensorData(values, dtype)
      const expected = decodeTensorData(bytes, dtype)
      for (const offset of [1, 2, 3, 5]) {
        const big = new Uint8Array(bytes.length + offset + 3)
        big.set(bytes, offset)
        const view = big.subarray(offset, offset + bytes.length)
        const got = decodeTensorData(view, dtype)
        assert.deepEqual(got, expected)
        big.fill(0xff)
        assert.deepEqual(got, expected, 'decoded data must not alias the input buffer')
      }
    })

    it(`writes ${dtype} into an unaligned destination`, () => {
      const bytes = encodeTensorData(values, dtype)
      const big = new Uint8Array(bytes.length + 7)
      writeTensorData(values, dtype, big.subarray(3, 3 + bytes.length))
      assert.deepEqual(big.subarray(3, 3 + bytes.length), bytes)
    })

    it(`encodes a ${dtype} subarray view (non-zero byteOffset) correctly`, () => {
      const bytes = encodeTensorData(values.subarray(2, 5), dtype)
      assert.deepEqual(decodeTensorData(bytes, dtype), decodeTensorData(encodeTensorData(values.slice(2, 5), dtype), dtype))
    })
  }

  it('rejects a payload that is not a whole number of values', () => {
    assert.throws(() => decodeTensorData(new Uint8Array(6), 'f32'), MalformedFrameError)
    assert.throws(() => decodeTensorData(new Uint8Array(3), 'f16'), MalformedFrameError)
  })

  it('refuses a destination of the wrong size', () => {
    assert.throws(() => writeTensorData(values, 'f16', new Uint8Array(3)), RangeError)
  })
})
