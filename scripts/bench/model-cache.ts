// The benchmark's random-weight models: generated once into a cache directory and reused while
// their config and weight file match the requested shape. A `.complete` marker is written last,
// so an interrupted generation is never mistaken for a finished one; a `.strata-bench-model`
// marker is written first, and only a directory holding one of the two (or an empty one) is ever
// deleted to generate another model there.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { statfs } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import cliProgress from 'cli-progress'
import { makeModel, type MakeModelOptions } from '../../src/shards/make-model.ts'
import { decorates } from '../../src/cli/terminal.ts'
import { log, formatBytes } from './util.ts'

/** a benchmark model's shape: make-model's options minus where and how to write it */
export type BenchShape = Pick<MakeModelOptions, 'layers' | 'hidden' | 'heads' | 'kvHeads' | 'intermediate' | 'vocab' | 'seed'>

/** TinyLlama-1.1B's shape (random weights). */
export const TINYLLAMA_SHAPE: BenchShape = { layers: 22, hidden: 2048, heads: 32, kvHeads: 4, intermediate: 5632, vocab: 32000, seed: 1 }
/** A small shape with the same head dim (64) and GQA ratio, for smoke tests in seconds. */
export const QUICK_SHAPE: BenchShape = { layers: 4, hidden: 512, heads: 8, kvHeads: 1, intermediate: 1408, vocab: 4096, seed: 1 }

export interface ShapeCounts {
  /** parameters in the transformer blocks */
  blockParams: number
  /** embeddings + final norm + LM head */
  headParams: number
  totalParams: number
  /** model.safetensors size in f32 (data only) */
  f32Bytes: number
}

export function shapeCounts (s: BenchShape): ShapeCounts {
  const D = s.hidden / s.heads
  const perBlock = 2 * s.hidden + // norms
    s.hidden * (s.heads * D) * 2 + // q, o
    s.hidden * (s.kvHeads * D) * 2 + // k, v
    3 * s.hidden * s.intermediate // gate, up, down
  const blockParams = perBlock * s.layers
  const headParams = 2 * s.vocab * s.hidden + s.hidden
  const totalParams = blockParams + headParams
  return { blockParams, headParams, totalParams, f32Bytes: totalParams * 4 }
}

export type CheckpointDtype = 'f32' | 'f16' | 'bf16'
const TORCH_DTYPE: Record<CheckpointDtype, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }
const BYTES: Record<CheckpointDtype, number> = { f32: 4, f16: 2, bf16: 2 }

function matches (dir: string, s: BenchShape, dtype: CheckpointDtype): boolean {
  try {
    if (!existsSync(path.join(dir, '.complete'))) return false
    const c = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'))
    const same = c.num_hidden_layers === s.layers && c.hidden_size === s.hidden && c.num_attention_heads === s.heads &&
      c.num_key_value_heads === s.kvHeads && c.intermediate_size === s.intermediate && c.vocab_size === s.vocab &&
      c.strata_seed === s.seed && c.torch_dtype === TORCH_DTYPE[dtype]
    return same && statSync(path.join(dir, 'model.safetensors')).size > (shapeCounts(s).f32Bytes * BYTES[dtype]) / 4
  } catch {
    return false
  }
}

async function freeBytes (dir: string): Promise<number> {
  const st = await statfs(dir)
  return st.bavail * st.bsize
}

/** The nearest existing ancestor of `p` (statfs needs an existing path). */
function existingAncestor (p: string): string {
  let d = path.resolve(p)
  while (!existsSync(d)) d = path.dirname(d)
  return d
}

/**
 * Fails with a clear message when the disk cannot hold the model (if it must be generated) plus
 * the temporary external-data file onnxruntime loads graphs over 1.5 GiB from (in os.tmpdir()).
 */
export async function checkDisk (dir: string, s: BenchShape, needModel: boolean): Promise<void> {
  const { f32Bytes, blockParams } = shapeCounts(s)
  const modelNeed = needModel ? f32Bytes * 1.02 : 0
  const graphNeed = blockParams * 4 > 1.5 * 1024 ** 3 ? blockParams * 4 * 1.02 : 0
  const cacheFs = existingAncestor(dir)
  const tmpFs = existingAncestor(tmpdir())
  const sameFs = statSync(cacheFs).dev === statSync(tmpFs).dev
  const checks: Array<{ where: string, need: number, what: string }> = sameFs
    ? [{ where: cacheFs, need: modelNeed + graphNeed, what: 'the benchmark model and the temporary f32 span graph' }]
    : [{ where: cacheFs, need: modelNeed, what: 'the benchmark model' }, { where: tmpFs, need: graphNeed, what: 'the temporary f32 span graph' }]
  for (const c of checks) {
    if (c.need === 0) continue
    const free = await freeBytes(c.where)
    if (free < c.need) {
      throw new Error(`not enough free disk space: ${formatBytes(c.need)} needed for ${c.what} on the filesystem of ${c.where}, ` +
        `${formatBytes(free)} available. Free some space, or pass --cache DIR on a larger disk (TMPDIR moves the graph file), or use --quick.`)
    }
  }
}

/** written first into a directory the bench generates a model in: only such a directory is ever deleted */
const MARKER = '.strata-bench-model'

/** A directory that holds something else than a benchmark model (e.g. `--cache` given a folder of one's own). */
export class NotABenchModelDirError extends Error {
  override name = 'NotABenchModelDirError'
}

/** Throws unless `dir` is absent, empty, or one the bench generated a model in (it is about to be replaced). */
function replaceable (dir: string): void {
  if (!existsSync(dir) || readdirSync(dir).length === 0 || existsSync(path.join(dir, MARKER)) || existsSync(path.join(dir, '.complete'))) return
  throw new NotABenchModelDirError(`${dir} is not empty and holds no benchmark model of strata's: it would have to be deleted to generate one there. ` +
    'Pass --cache a path of its own (the model goes straight into it), or remove that directory yourself.')
}

/** Returns the directory of a model with shape `s` in `dtype` (default f32), generating it if needed. */
export async function ensureBenchModel (dir: string, s: BenchShape, dtype: CheckpointDtype = 'f32'): Promise<{ dir: string, generated: boolean, seconds: number }> {
  if (matches(dir, s, dtype)) {
    await checkDisk(dir, s, false)
    return { dir, generated: false, seconds: 0 }
  }
  await checkDisk(dir, s, true)
  replaceable(dir)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, MARKER), 'a strata benchmark model: `npm run bench` may delete this directory to generate another\n')
  const total = (shapeCounts(s).f32Bytes * BYTES[dtype]) / 4
  log(`generating the benchmark model (${formatBytes(total)} of ${dtype} weights) in ${dir}`)
  const t0 = performance.now()
  const tty = decorates(process.stderr)
  const bar = new cliProgress.SingleBar({
    stream: process.stderr,
    format: 'make-model [{bar}] {percentage}% | {done} / {all} | ETA {eta_formatted}',
    hideCursor: true
  }, cliProgress.Presets.shades_classic)
  if (tty) bar.start(total, 0, { done: formatBytes(0), all: formatBytes(total) })
  let lastTenth = -1
  try {
    makeModel({
      ...s,
      out: dir,
      dtype,
      onProgress: (done, all) => {
        if (tty) { bar.update(done, { done: formatBytes(done), all: formatBytes(all) }); return }
        const tenth = Math.floor((10 * done) / all)
        if (tenth !== lastTenth) { lastTenth = tenth; log(`make-model ${tenth * 10}%`) }
      }
    })
  } finally {
    if (tty) bar.stop()
  }
  writeFileSync(path.join(dir, '.complete'), new Date().toISOString() + '\n')
  const seconds = (performance.now() - t0) / 1000
  log(`model generated in ${seconds.toFixed(1)} s`)
  return { dir, generated: true, seconds }
}
