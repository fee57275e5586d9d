import assert from 'node:assert/strict'
import { halfToFloat, toFloat32 } from '../../src/shards/safetensors.ts'
import { GraphBuilder, DataType, InitializerSizeError } from '../../src/shards/onnx/builder.ts'
import { tempDir } from '../helpers/models.ts'

describe('weight bytes on their way into a graph', function () {
  it('decodes every f16 and bf16 bit pattern exactly', function () {
    const bits = Uint16Array.from({ length: 65536 }, (_, i) => i)
    const bytes = new Uint8Array(bits.buffer)
    const f16 = toFloat32({ dtype: 'F16', shape: [65536], bytes })
    const bf16 = toFloat32({ dtype: 'BF16', shape: [65536], bytes })
    const asBits = new Uint32Array(bf16.buffer)
    for (let h = 0; h < 65536; h++) {
      const want = halfToFloat(h)
      assert.ok(Object.is(f16[h], Math.fround(want)) || (Number.isNaN(want) && Number.isNaN(f16[h])), `f16 0x${h.toString(16)}`)
      assert.equal(asBits[h], h << 16 >>> 0, `bf16 0x${h.toString(16)}`)
    }
    // an odd byte offset (a tensor not 2-byte aligned in its buffer) decodes the same
    const shifted = new Uint8Array(bytes.length + 1)
    shifted.set(bytes, 1)
    assert.deepEqual(toFloat32({ dtype: 'F16', shape: [65536], bytes: shifted.subarray(1) }), f16)
  })

  it('a lazy initializer that produces the wrong number of bytes is an error, not a corrupt graph', function () {
    for (const produced of [4000, 4100]) {
      const g = new GraphBuilder('t')
      g.initializer('w', DataType.FLOAT, [1024], { byteLength: 4096, produce: (sink) => sink(new Uint8Array(produced)) })
      assert.throws(() => g.toBytes(), InitializerSizeError)
      assert.throws(() => g.toDirectory(tempDir('lazy-')), InitializerSizeError)
    }
  })
})
