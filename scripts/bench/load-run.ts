// Child process of the load benchmark: loads ONE span once (in this thread, as the engine worker
// does), so its peak RSS is that load's alone. Protocol as local-run.ts: one LoadJob in over IPC,
// { ok, result } or { ok: false, error } back.
import '../../src/polyfill.ts'
import 'onnxruntime-node'
import { closeSync, openSync, readSync } from 'node:fs'
import path from 'node:path'
import { SpanEngine } from '../../src/shards/span-engine.ts'
import { SafetensorsFile } from '../../src/shards/safetensors.ts'
import type { WeightFormat } from '../../src/shards/span-graph.ts'
import type { LoadTimings } from '../../src/shards/ort-session.ts'
import { peakRssBytes } from './util.ts'

export interface LoadJob {
  modelDir: string
  /** undefined: the checkpoint's default */
  format: WeightFormat | undefined
  threads: number
  /** quantized-span cache directory (int8/int4) */
  cacheDir: string | undefined
  promptTokens: number
  decodeTokens: number
}

export interface LoadRunResult {
  format: WeightFormat
  /** bytes of the span's tensors in the checkpoint, and the time to read them from the page cache */
  spanFileBytes: number
  readSeconds: number
  loadSeconds: number
  /** where the load went: quantize or widen + serialise (or check a cached entry), onnxruntime session */
  timings: LoadTimings
  /** the first step after loading (a prefill: mapped weights are paged in here) */
  firstStepSeconds: number
  bytesRead: number
  cacheOutcome: string | null
  /** RSS with node and onnxruntime loaded, before the span */
  rssBeforeBytes: number
  rssAfterLoadBytes: number
  /** getrusage high-water mark right after loading */
  loadPeakRssBytes: number
  /** after a prefill + decode steps (all weights touched, the KV cache allocated) */
  rssSteadyBytes: number
  peakRssBytes: number
  kvBytes: number
  decodeMsPerToken: number
}


/** Reads the byte ranges of every block tensor (the whole-model span) into one reused buffer. */
function readSpanBytes (modelDir: string): { bytes: number, seconds: number } {
  const file = path.join(modelDir, 'model.safetensors')
  const st = new SafetensorsFile(file)
  const ranges = [...st.entries.values()].filter((e) => e.name.startsWith('model.layers.'))
  st.close()
  const buf = new Uint8Array(64 * 1024 * 1024)
  const pass = (): number => {
    const fd = openSync(file, 'r')
    let total = 0
    try {
      for (const e of ranges) {
        for (let done = 0; done < e.byteLength;) {
          const n = readSync(fd, buf, 0, Math.min(buf.length, e.byteLength - done), e.offset + done)
          if (n === 0) throw new Error(`${file}: short read`)
          done += n
          total += n
        }
      }
    } finally {
      closeSync(fd)
    }
    return total
  }
  pass() // brings the file into the page cache
  const t = performance.now()
  const bytes = pass()
  return { bytes, seconds: (performance.now() - t) / 1000 }
}

async function run (job: LoadJob): Promise<LoadRunResult> {
  const rssBeforeBytes = process.memoryUsage().rss
  const read = readSpanBytes(job.modelDir)
  const layers = (await import('../../src/shards/config.ts')).loadModelConfig(job.modelDir).numLayers
  const t = performance.now()
  const engine = await SpanEngine.load(job.modelDir, { start: 0, end: layers, weightFormat: job.format, threads: job.threads, spanCacheDir: job.cacheDir })
  const loadSeconds = (performance.now() - t) / 1000
  const loadPeakRssBytes = peakRssBytes()
  const rssAfterLoadBytes = process.memoryUsage().rss
  try {
    const H = engine.config.hiddenSize
    const length = job.promptTokens + job.decodeTokens
    engine.open('bench', length)
    const rows = (n: number): Float32Array => Float32Array.from({ length: n * H }, (_, i) => Math.sin(i * 0.37))
    const prompt = rows(job.promptTokens)
    const t0 = performance.now()
    await engine.step('bench', prompt, 0)
    const firstStepSeconds = (performance.now() - t0) / 1000
    const t1 = performance.now()
    for (let i = 0; i < job.decodeTokens; i++) await engine.step('bench', rows(1), job.promptTokens + i)
    const decodeMsPerToken = (performance.now() - t1) / job.decodeTokens
    const rssSteadyBytes = process.memoryUsage().rss
    return {
      format: engine.weightFormat,
      spanFileBytes: read.bytes,
      readSeconds: read.seconds,
      loadSeconds,
      timings: engine.loadTimings,
      firstStepSeconds,
      bytesRead: engine.bytesRead,
      cacheOutcome: engine.cacheOutcome,
      rssBeforeBytes,
      rssAfterLoadBytes,
      loadPeakRssBytes,
      rssSteadyBytes,
      peakRssBytes: peakRssBytes(),
      kvBytes: engine.kvBytesPerToken * length,
      decodeMsPerToken
    }
  } finally {
    await engine.dispose()
  }
}

process.once('message', (job: LoadJob) => {
  run(job).then(
    (result) => process.send?.({ ok: true, result }, () => process.exit(0)),
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err))
      process.send?.({ ok: false, error: { name: e.name, message: e.message, stack: e.stack } }, () => process.exit(1))
    })
})
