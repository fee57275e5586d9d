import assert from 'node:assert/strict'
import { cpSync, readdirSync, readFileSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { SpanEngine } from '../../src/shards/span-engine.ts'
import { HeadEngine } from '../../src/shards/head-engine.ts'
import { tinyModel, tempDir } from '../helpers/models.ts'

const shape = { layers: 3, hidden: 64, heads: 4, kvHeads: 2, intermediate: 128, vocab: 300, seed: 31 }
const prompt = [1, 17, 42, 99, 5, 230, 64]

describe('span cache: quantized spans', function () {
  let model: string
  let head: HeadEngine
  let embedded: Float32Array
  before(async function () {
    // a private copy: one test changes the checkpoint
    model = path.join(tempDir('span-cache-model-'), 'm')
    cpSync(tinyModel('span-cache', shape), model, { recursive: true })
    head = await HeadEngine.load(model, { threads: 1 })
    embedded = head.embed(prompt)
  })
  after(async function () { await head?.dispose() })

  /** loads [1, 3) in `format`, runs the prompt and one decode step; returns outputs and what the cache did */
  async function run (cacheDir: string, weightFormat: 'int8' | 'int4'): Promise<{ out: Float32Array[], outcome: string | null, bytesRead: number }> {
    const e = await SpanEngine.load(model, { start: 1, end: 3, weightFormat, threads: 1, spanCacheDir: cacheDir })
    try {
      e.open('s', 16)
      const a = await e.step('s', embedded, 0)
      const b = await e.step('s', embedded.subarray(0, shape.hidden), prompt.length)
      return { out: [a, b], outcome: e.cacheOutcome, bytesRead: e.bytesRead }
    } finally {
      await e.dispose()
    }
  }

  const entries = (cacheDir: string): string[] => readdirSync(path.join(cacheDir, 'spans'))

  it('a warm load reuses the stored span, reads no matrix weights, and computes the same bits', async function () {
    const cache = tempDir('span-cache-')
    for (const fmt of ['int8', 'int4'] as const) {
      const cold = await run(cache, fmt)
      const warm = await run(cache, fmt)
      assert.equal(cold.outcome, 'stored')
      assert.equal(warm.outcome, 'hit')
      assert.ok(warm.bytesRead < cold.bytesRead / 10, `warm load read ${warm.bytesRead} bytes of the checkpoint, cold ${cold.bytesRead}`)
      for (let i = 0; i < cold.out.length; i++) assert.deepEqual(warm.out[i], cold.out[i])
    }
    assert.equal(entries(cache).length, 2, 'one entry per format')
  })

  it('a changed shard file invalidates the entry', async function () {
    const cache = tempDir('span-cache-')
    const first = await run(cache, 'int8')
    const file = path.join(model, 'model.safetensors')
    const later = new Date(Date.now() + 5000)
    utimesSync(file, later, later)
    const after = await run(cache, 'int8')
    assert.equal(after.outcome, 'stored', 'the touched checkpoint is a new key')
    assert.deepEqual(after.out[0], first.out[0])
    assert.equal(entries(cache).length, 2)
  })

  it('corrupt, truncated and half-written entries are detected and rebuilt', async function () {
    const cache = tempDir('span-cache-')
    const good = await run(cache, 'int4')
    const [id] = entries(cache)
    const weights = path.join(cache, 'spans', id, 'weights.bin')
    const bytes = readFileSync(weights)
    bytes[bytes.length >> 1] ^= 0x10
    writeFileSync(weights, bytes)
    const flipped = await run(cache, 'int4')
    assert.equal(flipped.outcome, 'rebuilt')
    assert.deepEqual(flipped.out, good.out)

    writeFileSync(weights, readFileSync(weights).subarray(0, 100))
    assert.equal((await run(cache, 'int4')).outcome, 'rebuilt')

    writeFileSync(path.join(cache, 'spans', id, 'manifest.json'), '{"version":1,')
    assert.equal((await run(cache, 'int4')).outcome, 'rebuilt')

    // a crash mid-write leaves only a temporary directory, which never counts as an entry
    mkdirSync(path.join(cache, 'spans', `${id}.tmp-1-dead`))
    const again = await run(cache, 'int4')
    assert.equal(again.outcome, 'hit')
    assert.deepEqual(again.out, good.out)
  })
})

describe('span cache: 16-bit checkpoints widened to f32', function () {
  this.timeout(120_000)
  // big enough (≈100 MiB of f32 matrices) that the widened span goes through the cache
  const big = { layers: 2, hidden: 1024, heads: 16, kvHeads: 4, intermediate: 2816, vocab: 300, seed: 7, dtype: 'f16' as const }

  it('an F16 span is widened into the cache once; a warm load maps it and computes the same bits', async function () {
    const dir = tinyModel('span-cache-f16-big', big)
    const head = await HeadEngine.load(dir, { threads: 1 })
    const cache = tempDir('span-cache-f16-')
    const run = async (): Promise<{ out: Float32Array, outcome: string | null }> => {
      const e = await SpanEngine.load(dir, { start: 0, end: 2, threads: 1, spanCacheDir: cache })
      try {
        e.open('s', 16)
        return { out: await e.step('s', head.embed(prompt), 0), outcome: e.cacheOutcome }
      } finally {
        await e.dispose()
      }
    }
    try {
      const cold = await run()
      const warm = await run()
      assert.equal(cold.outcome, 'stored')
      assert.equal(warm.outcome, 'hit')
      assert.deepEqual(warm.out, cold.out)
      // the entry holds the span's matrices as f32: twice the checkpoint's 16-bit bytes
      const [entry] = readdirSync(path.join(cache, 'spans'))
      const manifest = JSON.parse(readFileSync(path.join(cache, 'spans', entry, 'manifest.json'), 'utf8'))
      const matrices = big.layers * (2 * big.hidden * big.hidden + 2 * big.hidden * (big.hidden / 4) + 3 * big.hidden * big.intermediate)
      assert.ok(manifest.files['weights.bin'].size >= 4 * matrices, `${manifest.files['weights.bin'].size} bytes`)
    } finally {
      await head.dispose()
    }
  })
})

