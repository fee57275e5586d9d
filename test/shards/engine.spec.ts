import assert from 'node:assert/strict'
import { SpanEngine } from '../../src/shards/span-engine.ts'
import { HeadEngine } from '../../src/shards/head-engine.ts'
import { argmax } from '../../src/client/sampling.ts'
import { ReferenceLlama } from './reference.ts'
import { tinyModel, shapes } from '../helpers/models.ts'

/** max |a-b| / (max |b| + 1e-6) */
function relErr (a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0
  let scale = 0
  for (let i = 0; i < b.length; i++) { diff = Math.max(diff, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])) }
  return diff / (scale + 1e-6)
}

function flat (rows: Float64Array[]): Float64Array {
  const out = new Float64Array(rows.length * rows[0].length)
  rows.forEach((r, i) => out.set(r, i * r.length))
  return out
}

const prompt = [1, 17, 42, 99, 5, 230, 64]

describe('span engine vs Float64 reference', function () {
  for (const [name, shape] of Object.entries(shapes)) {
    describe(`${name} model (${shape.heads} heads / ${shape.kvHeads} kv, hidden ${shape.hidden}${'dtype' in shape ? ', ' + shape.dtype : ''}${'tieEmbeddings' in shape ? ', tied' : ''})`, function () {
      let dir: string
      let ref: ReferenceLlama
      let engine: SpanEngine
      let head: HeadEngine
      before(async function () {
        dir = tinyModel(name, shape)
        ref = new ReferenceLlama(dir)
        engine = await SpanEngine.load(dir, { start: 0, end: shape.layers, threads: 1 })
        head = await HeadEngine.load(dir, { threads: 1 })
      })
      after(async function () {
        await engine?.dispose()
        await head?.dispose()
      })

      it('prefill output equals the reference within 1e-5 (relative)', async function () {
        const expected = flat(ref.blocks(ref.embed(prompt), 0, shape.layers))
        engine.open('p', 64)
        const got = await engine.step('p', head.embed(prompt), 0)
        engine.close('p')
        assert.ok(relErr(got, expected) < 1e-5, `relative error ${relErr(got, expected)}`)
      })

      it('prefill then token-by-token decode equals full recompute', async function () {
        const tokens = [...prompt, 7, 8, 9]
        const expected = ref.blocks(ref.embed(tokens), 0, shape.layers)
        engine.open('d', 64)
        await engine.step('d', head.embed(prompt), 0)
        for (let i = prompt.length; i < tokens.length; i++) {
          const got = await engine.step('d', head.embed([tokens[i]]), i)
          assert.ok(relErr(got, expected[i]) < 1e-5, `position ${i}: relative error ${relErr(got, expected[i])}`)
        }
        engine.close('d')
      })

      it('logits of the head equal the reference', async function () {
        const hidden = ref.blocks(ref.embed(prompt), 0, shape.layers)
        const last = hidden[hidden.length - 1]
        const got = await head.logits(Float32Array.from(last))
        const expected = ref.logits(last)
        assert.ok(relErr(got, expected) < 1e-5, `relative error ${relErr(got, expected)}`)
        assert.equal(argmax(got), argmax(expected))
      })
    })
  }
})

describe('span engine sessions', function () {
  const shape = shapes.gqa
  let dir: string
  let engine: SpanEngine
  let head: HeadEngine
  before(async function () {
    dir = tinyModel('gqa', shape)
    engine = await SpanEngine.load(dir, { start: 0, end: shape.layers, threads: 1 })
    head = await HeadEngine.load(dir, { threads: 1 })
  })
  after(async function () {
    await engine?.dispose()
    await head?.dispose()
  })

  it('keeps concurrent sessions apart', async function () {
    engine.open('a', 32)
    engine.open('b', 32)
    const a1 = await engine.step('a', head.embed([1, 2, 3]), 0)
    await engine.step('b', head.embed([9, 9, 9, 9]), 0)
    const a2 = await engine.step('a', head.embed([4]), 3)
    engine.open('c', 32)
    const c1 = await engine.step('c', head.embed([1, 2, 3]), 0)
    const c2 = await engine.step('c', head.embed([4]), 3)
    assert.deepEqual(c1, a1)
    assert.deepEqual(c2, a2)
    for (const s of ['a', 'b', 'c']) engine.close(s)
    assert.equal(engine.openSessions, 0)
  })

  it('truncate rolls the cache back exactly', async function () {
    engine.open('t', 32)
    await engine.step('t', head.embed([1, 2, 3, 4]), 0)
    const first = await engine.step('t', head.embed([5]), 4)
    await engine.step('t', head.embed([6, 7]), 5)
    engine.truncate('t', 4)
    assert.deepEqual(await engine.step('t', head.embed([5]), 4), first)
    engine.close('t')
  })

  it('rejects desynced positions, overlong steps and unknown sessions', async function () {
    engine.open('x', 4)
    await assert.rejects(engine.step('x', head.embed([1]), 2), /position 2 but the session holds 0/)
    await assert.rejects(engine.step('x', head.embed([1, 2, 3, 4, 5]), 0), /exceed the session's max length 4/)
    await assert.rejects(engine.step('x', new Float32Array(10), 0), /not a whole number/)
    await assert.rejects(engine.step('nope', head.embed([1]), 0), /no open session/)
    assert.throws(() => engine.truncate('x', 3), /cannot truncate to 3/)
    assert.throws(() => head.embed([shape.vocab]), /outside the vocabulary/)
    engine.close('x')
  })
})

describe('leaving a span early', function () {
  it('a session on [0, 2) of a [0, 4) span returns exactly what a [0, 2) span returns', async function () {
    const dir = tinyModel('gqa', shapes.gqa)
    const wide = await SpanEngine.load(dir, { start: 0, end: 4, threads: 1 })
    const narrow = await SpanEngine.load(dir, { start: 0, end: 2, threads: 1 })
    const head = await HeadEngine.load(dir, { threads: 1 })
    try {
      wide.open('s', 16, 2)
      narrow.open('s', 16)
      assert.deepEqual(await wide.step('s', head.embed([1, 2, 3]), 0), await narrow.step('s', head.embed([1, 2, 3]), 0))
      assert.deepEqual(await wide.step('s', head.embed([4]), 3), await narrow.step('s', head.embed([4]), 3))
      assert.throws(() => wide.open('t', 16, 0), /outside the span/)
      assert.throws(() => wide.open('t', 16, 5), /outside the span/)
    } finally {
      await wide.dispose(); await narrow.dispose(); await head.dispose()
    }
  })
})
