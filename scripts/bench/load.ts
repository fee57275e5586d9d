// Section "load": how long a span takes to load and how much memory it holds, per checkpoint
// dtype (F32, F16, BF16 — same random weights' shape) and for int8/int4: cold (16-bit weights
// widened to f32, or quantized, then stored in the span cache) and warm (from the cache). Every load runs in a fresh
// process; the time to read the span's bytes from the page cache is measured in that same process
// just before, so "load / read" compares like with like on a machine whose speed varies.
import { fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { WeightFormat } from '../../src/shards/span-graph.ts'
import { ensureBenchModel, shapeCounts, QUICK_SHAPE, TINYLLAMA_SHAPE, type BenchShape, type CheckpointDtype } from './model-cache.ts'
import type { LoadJob, LoadRunResult } from './load-run.ts'
import { renderTable } from './report.ts'
import { log, round, MiB } from './util.ts'

export interface LoadBenchOptions {
  quick: boolean
  threads: number
  /** directory holding bench-<shape>-<dtype> model directories */
  cacheRoot: string
}

export interface LoadRow {
  checkpoint: CheckpointDtype
  format: WeightFormat
  /** cold: quantized (or widened to f32) now and stored; warm: loaded from the span cache; '' for F32 checkpoints' f32 */
  cache: string
  readSeconds: number
  loadSeconds: number
  loadOverRead: number
  /** where the load went (see LoadTimings): quantize or widen + serialise, onnxruntime session */
  serializeSeconds: number
  sessionSeconds: number
  /** the 128-token prefill right after loading: mapped weights are paged in here */
  firstStepSeconds: number
  spanFileMiB: number
  /** span matrices and norms in the format held in memory (f32 compute for f32/f16/bf16 checkpoints) */
  weightsMiB: number
  kvMiB: number
  rssBeforeMiB: number
  loadPeakMiB: number
  steadyMiB: number
  peakOverSteady: number
  /** steady − weights − KV: the fixed overhead (node, onnxruntime, graph, buffers) */
  overheadMiB: number
  decodeMsPerToken: number
}

export interface LoadBenchResult {
  section: 'load'
  shape: BenchShape & { name: string }
  settings: { threads: number, span: string, promptTokens: number, decodeTokens: number }
  rows: LoadRow[]
}

const CHILD = new URL('./load-run.ts', import.meta.url)

async function inChild (job: LoadJob): Promise<LoadRunResult> {
  return await new Promise<LoadRunResult>((resolve, reject) => {
    const child = fork(CHILD, [], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let settled = false
    child.on('message', (m: { ok: true, result: LoadRunResult } | { ok: false, error: { message: string } }) => {
      settled = true
      if (m.ok) resolve(m.result)
      else reject(new Error(`load ${job.format ?? 'default'}: ${m.error.message}`))
    })
    child.on('error', (err) => { if (!settled) { settled = true; reject(err) } })
    child.on('exit', (code, signal) => { if (!settled) { settled = true; reject(new Error(`load benchmark process exited (${signal ?? `code ${code}`}) without a result`)) } })
    child.send(job)
  })
}

/** Bytes the span's weights take in memory in `format` (matrices + norms). */
function weightBytes (s: BenchShape, format: WeightFormat): number {
  const { blockParams } = shapeCounts(s)
  const norms = 2 * s.hidden * s.layers
  const matrices = blockParams - norms
  const perWeight = format === 'int8' ? 1 + 4 / 32 : format === 'int4' ? 0.5 + 4 / 32 : 4
  return matrices * perWeight + norms * 4
}

export async function benchLoad (o: LoadBenchOptions): Promise<LoadBenchResult> {
  const shape = o.quick ? QUICK_SHAPE : TINYLLAMA_SHAPE
  const name = o.quick ? 'quick' : 'tinyllama'
  const dirs = {} as Record<CheckpointDtype, string>
  for (const dtype of ['f32', 'f16', 'bf16'] as const) dirs[dtype] = (await ensureBenchModel(path.join(o.cacheRoot, `bench-${name}-${dtype}`), shape, dtype)).dir
  const quantCache = mkdtempSync(path.join(tmpdir(), 'strata-bench-spans-'))
  const plan: Array<{ checkpoint: CheckpointDtype, format: WeightFormat | undefined, cache: string }> = [
    { checkpoint: 'f32', format: undefined, cache: '' },
    { checkpoint: 'f16', format: undefined, cache: 'cold' },
    { checkpoint: 'f16', format: undefined, cache: 'warm' },
    { checkpoint: 'bf16', format: undefined, cache: 'cold' },
    { checkpoint: 'bf16', format: undefined, cache: 'warm' },
    { checkpoint: 'f32', format: 'int8', cache: 'cold' },
    { checkpoint: 'f32', format: 'int8', cache: 'warm' },
    { checkpoint: 'f32', format: 'int4', cache: 'cold' },
    { checkpoint: 'f32', format: 'int4', cache: 'warm' }
  ]
  const promptTokens = 128
  const decodeTokens = 8
  const rows: LoadRow[] = []
  try {
    for (const p of plan) {
      log(`load: ${p.checkpoint} checkpoint, ${p.format ?? 'default'} format${p.cache !== '' ? `, ${p.cache} cache` : ''} …`)
      const r = await inChild({ modelDir: dirs[p.checkpoint], format: p.format, threads: o.threads, cacheDir: p.cache === '' ? undefined : quantCache, promptTokens, decodeTokens })
      const weights = weightBytes(shape, r.format)
      const row: LoadRow = {
        checkpoint: p.checkpoint,
        format: r.format,
        cache: p.cache === '' ? '' : `${p.cache} (${r.cacheOutcome ?? '?'})`,
        readSeconds: round(r.readSeconds),
        loadSeconds: round(r.loadSeconds),
        loadOverRead: round(r.loadSeconds / r.readSeconds, 2),
        serializeSeconds: round(r.timings.serializeSeconds),
        sessionSeconds: round(r.timings.sessionSeconds),
        firstStepSeconds: round(r.firstStepSeconds),
        spanFileMiB: round(r.spanFileBytes / MiB, 0),
        weightsMiB: round(weights / MiB, 0),
        kvMiB: round(r.kvBytes / MiB, 1),
        rssBeforeMiB: round(r.rssBeforeBytes / MiB, 0),
        loadPeakMiB: round(r.loadPeakRssBytes / MiB, 0),
        steadyMiB: round(r.rssSteadyBytes / MiB, 0),
        peakOverSteady: round(r.peakRssBytes / r.rssSteadyBytes, 2),
        overheadMiB: round((r.rssSteadyBytes - weights - r.kvBytes) / MiB, 0),
        decodeMsPerToken: round(r.decodeMsPerToken, 1)
      }
      log(`load: ${row.loadSeconds} s (read ${row.readSeconds} s, ${row.loadOverRead}×), peak ${row.loadPeakMiB} MiB, steady ${row.steadyMiB} MiB`)
      rows.push(row)
    }
  } finally {
    rmSync(quantCache, { recursive: true, force: true })
  }
  return {
    section: 'load',
    shape: { name: o.quick ? 'quick (small Llama)' : 'TinyLlama-1.1B (random weights)', ...shape },
    settings: { threads: o.threads, span: `all ${shape.layers} blocks`, promptTokens, decodeTokens },
    rows
  }
}

export function renderLoad (r: LoadBenchResult): string {
  const out: string[] = []
  out.push(`## load — ${r.shape.name}, span = ${r.settings.span}, threads=${r.settings.threads}`)
  out.push(renderTable(
    ['checkpoint', 'format', 'span cache', 'span file MiB', 'read s', 'load s', 'load/read', 'serialise s', 'session s', 'first prefill s', 'weights MiB', 'KV MiB', 'load peak MiB', 'steady MiB', 'peak/steady', 'overhead MiB', 'decode ms/tok'],
    r.rows.map((x) => [x.checkpoint, x.format, x.cache, String(x.spanFileMiB), x.readSeconds.toFixed(2), x.loadSeconds.toFixed(2), x.loadOverRead.toFixed(2) + '×',
      x.serializeSeconds.toFixed(2), x.sessionSeconds.toFixed(2), x.firstStepSeconds.toFixed(2),
      String(x.weightsMiB), x.kvMiB.toFixed(1), String(x.loadPeakMiB), String(x.steadyMiB), x.peakOverSteady.toFixed(2) + '×', String(x.overheadMiB), x.decodeMsPerToken.toFixed(1)])))
  out.push(`"read s": the span's tensor bytes read from the page cache (second pass), in the same process just before the load. ` +
    '"serialise / session": the stages of "load s" (quantizing or widening + writing the graph; onnxruntime creating the session, mapping and pre-packing the weights — a cached entry\'s CRC-32 is checked meanwhile); ' +
    `"first prefill": the ${r.settings.promptTokens}-token step right after loading (weights mapped from the checkpoint are paged in there). ` +
    `"steady": RSS after a ${r.settings.promptTokens}-token prefill and ${r.settings.decodeTokens} decode steps; "peak/steady": whole-process high-water mark over steady. ` +
    '"overhead" = steady − weights (in the format held in memory: f32 for f32/f16/bf16 checkpoints) − KV cache.')
  return out.join('\n')
}
