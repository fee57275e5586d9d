// Decode steps of several sessions batched into one graph call give every session exactly the
// bits it gets stepping alone (real onnxruntime, tiny models).
import assert from 'node:assert/strict'
import { SpanEngine, paddingGroups, type BatchStep } from '../../src/shards/span-engine.ts'
import { WorkerSpanEngine } from '../../src/shards/worker/engine-client.ts'
import { HeadEngine } from '../../src/shards/head-engine.ts'
import { EngineInputError } from '../../src/shards/errors.ts'
import { tinyModel, shapes, type TinyShape } from '../helpers/models.ts'

/** prompts of different lengths (one of a single token, one long), so the batch's pasts differ */
const prompts = [[1, 17, 42, 99, 5, 230, 64], [3], [8, 9, 10, 11], [200, 100, 50, 25, 12, 6, 3, 2, 1, 7, 70], Array.from({ length: 150 }, (_, i) => (i * 13 + 5) % 250)]

const bitsEqual = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))

describe('batched decode steps', function () {
  const cases: Array<[string, TinyShape, Parameters<typeof SpanEngine.load>[1]['weightFormat']?]> = [
    ['gqa', shapes.gqa],
    ['headDim8 (zero-padded heads)', shapes.headDim8],
    ['mistral (sliding window shorter than the pasts)', shapes.mistral],
    ['qwen3 (q/k norms)', shapes.qwen3],
    ['gqa, int8', shapes.gqa, 'int8'],
    // 16-bit weights are widened into f32 constants and pre-packed like F32 ones
    ['f16 checkpoint', shapes.f16],
    ['gqa, f16 storage of an F32 checkpoint', shapes.gqa, 'f16']
  ]
  for (const [name, shape, weightFormat] of cases) {
    it(`${name}: every row equals the same step run alone, bit for bit`, async function () {
      const dir = tinyModel(name.split(' ')[0].replace(',', ''), shape)
      const alone = await SpanEngine.load(dir, { start: 0, end: shape.layers, threads: 1, weightFormat })
      const batched = await SpanEngine.load(dir, { start: 0, end: shape.layers, threads: 2, weightFormat })
      const head = await HeadEngine.load(dir, { threads: 1 })
      try {
        const length = prompts.map((p) => p.length)
        for (const [i, p] of prompts.entries()) {
          // the last session leaves the span one block early: its row comes from another output
          const exit = i === 3 ? shape.layers - 1 : shape.layers
          alone.open(`s${i}`, 256, exit)
          batched.open(`s${i}`, 256, exit)
          // session 1 prefills nothing: its first position is a decode step inside the batch
          if (p.length > 1) {
            await alone.step(`s${i}`, head.embed(p), 0)
            await batched.step(`s${i}`, head.embed(p), 0)
          } else length[i] = 0
        }
        for (let t = 0; t < 5; t++) {
          const steps: BatchStep[] = prompts.map((_, i) => ({ sessionId: `s${i}`, hidden: head.embed([(t * 37 + i * 11 + 1) % 250]), position: length[i] }))
          // from the third step on, session 0 sits one out: batches of different sizes
          const rows = t >= 2 ? steps.slice(1) : steps
          const got = await batched.stepBatch(rows)
          for (const [j, st] of rows.entries()) {
            const expected = await alone.step(st.sessionId, st.hidden, st.position)
            const out = got[j]
            assert.ok(out instanceof Float32Array, `row ${j}: ${String(out)}`)
            assert.ok(bitsEqual(out, expected), `step ${t}, ${st.sessionId}: batched row differs from the step alone`)
            length[Number(st.sessionId.slice(1))]++
          }
        }
      } finally {
        await alone.dispose(); await batched.dispose(); await head.dispose()
      }
    })
  }

  it('rows of very different past lengths go in separate batches: padding stays within twice the real positions plus slack', function () {
    // 4 × 2000 ≤ 2 × 4013 + 4 × 64; a fifth row would not be
    assert.deepEqual(paddingGroups([10, 2000, 12, 11, 1990], (x) => x), [[2000, 1990, 12, 11], [10]])
    // one long past takes at most one short one along (2 × 2000 ≤ 2 × 2010 + 128), the rest go together
    assert.deepEqual(paddingGroups([2000, 10, 10, 10], (x) => x), [[2000, 10], [10, 10]])
    assert.deepEqual(paddingGroups([0, 0, 5, 63], (x) => x), [[63, 5, 0, 0]])
    assert.deepEqual(paddingGroups([], (x: number) => x), [])
  })

  it('a bad step fails alone: the other rows of its batch compute as if it were not there', async function () {
    const dir = tinyModel('gqa', shapes.gqa)
    const engine = await SpanEngine.load(dir, { start: 0, end: 4, threads: 1 })
    const head = await HeadEngine.load(dir, { threads: 1 })
    try {
      for (const s of ['a', 'b', 'ref']) { engine.open(s, 8); await engine.step(s, head.embed([1, 2, 3]), 0) }
      engine.open('full', 1)
      await engine.step('full', head.embed([1]), 0)
      const x = head.embed([4])
      const got = await engine.stepBatch([
        { sessionId: 'a', hidden: x, position: 3 },
        { sessionId: 'nope', hidden: x, position: 0 },
        { sessionId: 'b', hidden: x, position: 2 },
        { sessionId: 'full', hidden: x, position: 1 },
        { sessionId: 'a', hidden: x, position: 3 },
        { sessionId: 'b', hidden: head.embed([4, 5]), position: 3 }
      ])
      const errors = got.map((g) => g instanceof Error ? g.message : null)
      assert.equal(errors[0], null)
      assert.match(errors[1] ?? '', /no open session nope/)
      assert.match(errors[2] ?? '', /position 2 but the session holds 3/)
      assert.match(errors[3] ?? '', /exceed the session's max length 1/)
      assert.match(errors[4] ?? '', /two steps in one batch/)
      assert.match(errors[5] ?? '', /one position/)
      for (const e of got.slice(1)) assert.ok(e instanceof EngineInputError)
      assert.ok(bitsEqual(got[0] as Float32Array, await engine.step('ref', x, 3)))
      // the failed rows left their sessions as they were: b (same prompt as a) now steps as a did
      assert.ok(bitsEqual(await engine.step('b', x, 3), got[0] as Float32Array))
    } finally {
      await engine.dispose(); await head.dispose()
    }
  })
})

describe('worker engine: steps that meet at a busy engine run as one batch', function () {
  it('concurrent decode steps batch themselves and get the bits of sequential steps', async function () {
    const dir = tinyModel('gqa', shapes.gqa)
    const engine = await WorkerSpanEngine.load(dir, { start: 0, end: 4, threads: 1 })
    const ref = await SpanEngine.load(dir, { start: 0, end: 4, threads: 1 })
    const head = await HeadEngine.load(dir, { threads: 1 })
    const batches: number[] = []
    engine.onBatch = (n) => { batches.push(n) }
    try {
      const ids = ['a', 'b', 'c', 'd', 'e']
      for (const [i, s] of ids.entries()) {
        await engine.open(s, 16)
        ref.open(s, 16)
        const p = prompts[i % 4]
        await engine.step(s, head.embed(p), 0)
        await ref.step(s, head.embed(p), 0)
      }
      // one-position steps count as decode steps (session b's one-token prompt), longer ones do not
      assert.deepEqual(batches, [1])
      batches.length = 0
      const length = ids.map((_, i) => prompts[i % 4].length)
      for (let t = 0; t < 3; t++) {
        const xs = ids.map((_, i) => head.embed([(t * 7 + i) % 300]))
        // all five at once: they run as one batch, or (when the first finds the engine idle and
        // no session expected back) as the first alone and the other four together
        const got = await Promise.all(ids.map(async (s, i) => await engine.step(s, xs[i], length[i])))
        for (const [i, s] of ids.entries()) assert.ok(bitsEqual(got[i], await ref.step(s, xs[i], length[i]++)), `step ${t}, session ${s}`)
      }
      assert.equal(batches.reduce((a, b) => a + b, 0), 15, `batches ${batches.join()}`)
      assert.ok(batches.every((b) => b === 1 || b >= 4), `batches ${batches.join()}`)
      assert.ok(batches.length <= 6 && Math.max(...batches) >= 4, `batches ${batches.join()}`)
      // a bad step in a batch fails alone
      const x = head.embed([9])
      const [ok, bad] = await Promise.allSettled([engine.step('a', x, length[0]), engine.step('b', x, 0), engine.step('c', x, length[2])])
      assert.equal(ok.status, 'fulfilled')
      assert.equal(bad.status, 'rejected')
      assert.ok((bad as PromiseRejectedResult).reason instanceof EngineInputError)
      assert.match(String((bad as PromiseRejectedResult).reason), /position 0 but the session holds/)
      // a lone step runs unbatched
      batches.length = 0
      await engine.step('d', x, length[3])
      assert.deepEqual(batches, [1])
    } finally {
      await engine.dispose(); await ref.dispose(); await head.dispose()
    }
  })
})
