import assert from 'node:assert/strict'
import { SpanEngine } from '../../src/shards/span-engine.ts'
import { HeadEngine } from '../../src/shards/head-engine.ts'
import { quantizeMatrix, dequantizeMatrix } from '../../src/shards/quantize.ts'
import { tinyModel } from '../helpers/models.ts'

/** relative RMS error of `a` against `b` */
function relRms (a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0
  let den = 0
  for (let i = 0; i < b.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2 }
  return Math.sqrt(num / den)
}

describe('weight quantization (MatMulNBits)', function () {
  it('block quantization round trip error is bounded by half a step', function () {
    const n = 8
    const k = 64
    const w = Float32Array.from({ length: n * k }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 5)))
    for (const bits of [8, 4] as const) {
      const q = quantizeMatrix(w, n, k, bits)
      const back = dequantizeMatrix(q)
      for (let i = 0; i < w.length; i++) {
        const scale = q.scales[Math.floor(i / 32)]
        assert.ok(Math.abs(back[i] - w[i]) <= scale / 2 + 1e-6, `bits ${bits} element ${i}`)
      }
    }
  })

  it('measures the accuracy loss of int8 and int4 spans against f32', async function () {
    const shape = { layers: 4, hidden: 128, heads: 4, kvHeads: 2, intermediate: 256, vocab: 300, seed: 21 }
    const dir = tinyModel('quant', shape)
    const head = await HeadEngine.load(dir, { threads: 1 })
    const prompt = Array.from({ length: 24 }, (_, i) => (i * 37) % 300)
    const outputs: Record<string, Float32Array> = {}
    for (const weightFormat of ['f32', 'int8', 'int4'] as const) {
      const engine = await SpanEngine.load(dir, { start: 0, end: shape.layers, weightFormat, threads: 1 })
      engine.open('q', 64)
      outputs[weightFormat] = await engine.step('q', head.embed(prompt), 0)
      await engine.dispose()
    }
    await head.dispose()
    const int8 = relRms(outputs.int8, outputs.f32)
    const int4 = relRms(outputs.int4, outputs.f32)
    console.log(`      hidden-state relative RMS error vs f32: int8 ${(int8 * 100).toFixed(3)}%, int4 ${(int4 * 100).toFixed(2)}%`)
    assert.ok(int8 < 0.03, `int8 error ${int8}`)
    assert.ok(int4 < 0.4, `int4 error ${int4}`)
    assert.ok(int8 < int4 / 8, 'int8 is much closer to f32 than int4')
  })

  it('a quantized head stores embeddings and LM head smaller, and stays close to f32', async function () {
    const shape = { layers: 1, hidden: 128, heads: 4, kvHeads: 2, intermediate: 256, vocab: 300, seed: 22 }
    const dir = tinyModel('quant-head', shape)
    const tokens = [0, 1, 150, 299]
    const hidden = Float32Array.from({ length: 3 * shape.hidden }, (_, i) => Math.sin(i * 0.37) * 2)
    const out: Record<string, { embed: Float32Array, logits: Float32Array }> = {}
    for (const weightFormat of ['f32', 'f16', 'int8', 'int4'] as const) {
      const head = await HeadEngine.load(dir, { threads: 1, weightFormat })
      out[weightFormat] = { embed: head.embed(tokens), logits: await head.logits(hidden, true) }
      await head.dispose()
    }
    const err = (f: string): { embed: number, logits: number } => ({ embed: relRms(out[f].embed, out.f32.embed), logits: relRms(out[f].logits, out.f32.logits) })
    const f16 = err('f16')
    const int8 = err('int8')
    const int4 = err('int4')
    console.log(`      embeddings / logits relative RMS error vs f32: f16 ${f16.embed.toExponential(1)} / ${f16.logits.toExponential(1)}, int8 ${int8.embed.toExponential(1)} / ${int8.logits.toExponential(1)}, int4 ${int4.embed.toExponential(1)} / ${int4.logits.toExponential(1)}`)
    assert.ok(f16.embed > 0 && f16.embed < 1e-3 && f16.logits < 1e-3, 'f16 rounds, barely')
    assert.ok(int8.embed > f16.embed && int8.embed < 0.01 && int8.logits < 0.03, 'int8 is close')
    assert.ok(int4.embed > int8.embed * 8 && int4.embed < 0.2 && int4.logits < 0.4, 'int4 is coarser')
  })
})
