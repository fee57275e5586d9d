// `npx tsx scripts/audit-spread.ts [--shape e2e|quick|both] [--out FILE]`
//
// Measures how far apart honest peers' outputs of the same hop are, to set the replica-audit
// tolerance (src/routing/hop-compare.ts): one span over all blocks of a random-weight model,
// a 16-token prefill then 16 single-token steps, computed by engines that differ in thread count,
// weight format, wire dtype (f16 rounding of the output) or step shapes (one multi-position
// replay against step by step). Prints a table and writes JSON. Also shows what the `corrupt`
// fault (+0.5 on every 7th value) looks like on the same scale.
import '../src/polyfill.ts'
import { parseArgs } from 'node:util'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { makeModel, type MakeModelOptions } from '../src/shards/make-model.ts'
import { WorkerSpanEngine, WorkerHeadEngine } from '../src/shards/worker/engine-client.ts'
import type { WeightFormat } from '../src/shards/span-graph.ts'
import { hopDifference } from '../src/routing/hop-compare.ts'
import { float16BitsToFloat32, float32ToFloat16Bits } from '../src/protocol/tensor.ts'

const SHAPES: Record<string, Omit<MakeModelOptions, 'out'>> = {
  e2e: { layers: 4, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 320, seed: 31 },
  quick: { layers: 4, hidden: 512, heads: 8, kvHeads: 4, intermediate: 1376, vocab: 4096, seed: 7 }
}
const PREFILL = 16
const DECODE = 16

interface Run { name: string, format: WeightFormat, threads: number, replay: boolean }

/** outputs of every step, in the shapes they were computed in; a replay computes all at once and is cut to the same steps */
async function runEngine (dir: string, layers: number, hidden: number, inputs: Float32Array[], r: Run): Promise<Float32Array[]> {
  const engine = await WorkerSpanEngine.load(dir, { start: 0, end: layers, weightFormat: r.format, threads: r.threads })
  try {
    await engine.open('s', PREFILL + DECODE)
    if (r.replay) {
      // the first 31 positions in one step (catch-up), then the last step alone, as an audit replays
      const all = concat(inputs.slice(0, -1))
      const caught = await engine.step('s', all, 0)
      const last = await engine.step('s', inputs[inputs.length - 1], PREFILL + DECODE - 1)
      const out: Float32Array[] = [caught.slice(0, PREFILL * hidden)]
      for (let i = 0; i < DECODE - 1; i++) out.push(caught.slice((PREFILL + i) * hidden, (PREFILL + i + 1) * hidden))
      out.push(last)
      return out
    }
    const out: Float32Array[] = []
    let position = 0
    for (const x of inputs) {
      out.push(await engine.step('s', x, position))
      position += x.length / hidden
    }
    return out
  } finally {
    await engine.dispose()
  }
}

function concat (xs: Float32Array[]): Float32Array {
  const out = new Float32Array(xs.reduce((n, x) => n + x.length, 0))
  let at = 0
  for (const x of xs) { out.set(x, at); at += x.length }
  return out
}

function f16 (x: Float32Array): Float32Array {
  return x.map((v) => float16BitsToFloat32(float32ToFloat16Bits(v)))
}

function corrupt (x: Float32Array): Float32Array {
  const y = x.slice()
  for (let i = 0; i < y.length; i += 7) y[i] += 0.5
  return y
}

function worst (a: Float32Array[], b: Float32Array[], hidden: number): { maxAbs: number, rel: number } {
  let maxAbs = 0
  let rel = 0
  for (let i = 0; i < a.length; i++) {
    const d = hopDifference(a[i], b[i], hidden)
    maxAbs = Math.max(maxAbs, d.maxAbs)
    rel = Math.max(rel, d.rel)
  }
  return { maxAbs, rel }
}

async function measure (shapeName: string): Promise<Array<{ shape: string, pair: string, maxAbs: number, rel: number }>> {
  const shape = SHAPES[shapeName]
  const dir = mkdtempSync(path.join(tmpdir(), 'strata-audit-spread-'))
  try {
    makeModel({ ...shape, out: dir })
    const head = await WorkerHeadEngine.load(dir, { threads: 1 })
    const tokens = Array.from({ length: PREFILL + DECODE }, (_, i) => (i * 37 + 11) % shape.vocab)
    const inputs = [await head.embed(tokens.slice(0, PREFILL))]
    for (let i = PREFILL; i < PREFILL + DECODE; i++) inputs.push(await head.embed([tokens[i]]))
    await head.dispose()
    const H = shape.hidden
    const base = await runEngine(dir, shape.layers, H, inputs, { name: 'f32 t1', format: 'f32', threads: 1, replay: false })
    const t2 = await runEngine(dir, shape.layers, H, inputs, { name: 'f32 t2', format: 'f32', threads: 2, replay: false })
    const replay = await runEngine(dir, shape.layers, H, inputs, { name: 'f32 replay', format: 'f32', threads: 1, replay: true })
    const i8 = await runEngine(dir, shape.layers, H, inputs, { name: 'int8 t1', format: 'int8', threads: 1, replay: false })
    const i8t2 = await runEngine(dir, shape.layers, H, inputs, { name: 'int8 t2', format: 'int8', threads: 2, replay: false })
    const i4 = await runEngine(dir, shape.layers, H, inputs, { name: 'int4 t1', format: 'int4', threads: 1, replay: false })
    const rows = [
      { pair: 'f32: threads 1 vs 2', d: worst(t2, base, H) },
      { pair: 'f32: step by step vs one-step replay', d: worst(replay, base, H) },
      { pair: 'f32 wire vs f16 wire (same peer)', d: worst(base.map(f16), base, H) },
      { pair: 'f16 wire: threads 1 vs 2', d: worst(t2.map(f16), base.map(f16), H) },
      { pair: 'int8: threads 1 vs 2', d: worst(i8t2, i8, H) },
      { pair: 'int8 vs f32', d: worst(i8, base, H) },
      { pair: 'int4 vs f32', d: worst(i4, base, H) },
      { pair: 'corrupt fault vs f32 (a liar)', d: worst(base.map(corrupt), base, H) }
    ]
    return rows.map((r) => ({ shape: shapeName, pair: r.pair, ...r.d }))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { shape: { type: 'string', default: 'both' }, out: { type: 'string' } } })
  const names = values.shape === 'both' ? Object.keys(SHAPES) : [values.shape!]
  const rows = []
  for (const n of names) {
    if (SHAPES[n] === undefined) throw new Error(`unknown --shape ${n}: e2e, quick or both`)
    rows.push(...await measure(n))
  }
  process.stdout.write('| shape | pair | max abs diff | max relative diff |\n|---|---|---|---|\n')
  for (const r of rows) process.stdout.write(`| ${r.shape} | ${r.pair} | ${r.maxAbs.toExponential(2)} | ${r.rel.toExponential(2)} |\n`)
  if (values.out !== undefined) writeFileSync(values.out, JSON.stringify({ prefill: PREFILL, decode: DECODE, rows }, null, 2) + '\n')
}

await main()
