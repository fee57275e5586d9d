import assert from 'node:assert/strict'
import { floatToHalf, halfToFloat, toFloat32 } from '../../src/shards/safetensors.ts'
import { float32Bytes, type MatrixPart, type MatrixSource } from '../../src/shards/matrix-source.ts'
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

  it('a matrix of F32, F16 and BF16 parts gives f32 bytes in row order, widened exactly or rounded to f16', function () {
    const k = 3
    const f32 = Float32Array.from([1.1, -2.2, 3.3e-6, 65519, 1e-8, -0.1])
    const f16 = Uint16Array.from([0x3c00, 0xc000, 0x0001])
    const bf16 = Uint16Array.from([0x3f80, 0x4049, 0xc2f7, 0x0080, 0x7f7f, 0x8000])
    const part = (rows: number, dtype: MatrixPart['dtype'], data: Float32Array | Uint16Array): MatrixPart =>
      ({ rows, dtype, readInto: (into) => into.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) })
    const m: MatrixSource = { n: 5, k, parts: () => [part(2, 'F32', f32), part(1, 'F16', f16), part(2, 'BF16', bf16)] }
    const widened = [...f32, ...toFloat32({ dtype: 'F16', shape: [3], bytes: new Uint8Array(f16.buffer) }), ...toFloat32({ dtype: 'BF16', shape: [6], bytes: new Uint8Array(bf16.buffer) })]
    const values = (roundToF16: boolean): number[] => {
      const lazy = float32Bytes(m, roundToF16)
      const chunks: Uint8Array[] = []
      lazy.produce((c) => chunks.push(c.slice()))
      const bytes = new Uint8Array(Buffer.concat(chunks))
      assert.equal(bytes.byteLength, lazy.byteLength)
      return [...new Float32Array(bytes.buffer)]
    }
    assert.deepEqual(values(false), widened)
    assert.deepEqual(values(true), widened.map((v) => Math.fround(halfToFloat(floatToHalf(v)))))
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

describe('checkpoint layouts', function () {
  it('loads a model whose weight file is a symlink into another directory (the Hugging Face cache layout)', async function () {
    const { SpanEngine } = await import('../../src/shards/span-engine.ts')
    const { tinyModel } = await import('../helpers/models.ts')
    const { cpSync, mkdirSync, renameSync, symlinkSync } = await import('node:fs')
    const path = await import('node:path')
    const original = tinyModel('gqa', { layers: 4, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 300, seed: 1 })
    const root = tempDir('hf-cache-')
    const snapshot = path.join(root, 'snapshots', 'abc')
    mkdirSync(path.join(root, 'blobs'))
    cpSync(original, snapshot, { recursive: true })
    renameSync(path.join(snapshot, 'model.safetensors'), path.join(root, 'blobs', 'f00d'))
    symlinkSync('../../blobs/f00d', path.join(snapshot, 'model.safetensors'))
    const hidden = Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i))
    const outputs: Float32Array[] = []
    for (const dir of [original, snapshot]) {
      const e = await SpanEngine.load(dir, { start: 0, end: 4, threads: 1 })
      e.open('s', 8)
      outputs.push(await e.step('s', hidden, 0))
      await e.dispose()
    }
    assert.deepEqual(outputs[1], outputs[0])
  })
})
