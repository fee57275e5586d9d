// Section "local": the whole model in one process (head + one span of all blocks, each in its
// worker thread, as LocalModel runs it), per weight format: load time, memory, prefill and decode
// tokens/s, and greedy-token agreement with f32 as the measured accuracy cost of quantization.
import os from 'node:os'
import type { WeightFormat } from '../../src/shards/span-graph.ts'
import { ensureBenchModel, shapeCounts, QUICK_SHAPE, TINYLLAMA_SHAPE, type BenchShape, type ShapeCounts } from './model-cache.ts'
import type { LocalJob, LocalRunResult, LoadBreakdown, RunTiming } from './local-run.ts'
import { log, median, formatBytes, round, randomTokens, runChild, MiB } from './util.ts'

export interface LocalBenchOptions {
  quick: boolean
  formats: WeightFormat[]
  threads: number
  /** model cache directory */
  cacheDir: string
  promptTokens: number
  decodeTokens: number
  repeats: number
  /** also time the stages of span loading (build / serialise / session), in extra processes */
  loadBreakdown: boolean
  /** before each measured generation, wait up to this many seconds for other processes to go quiet (0: don't) */
  idleWaitSeconds: number
}

export interface Agreement {
  /** positions (of all generated tokens) equal to the reference before the first difference */
  prefixMatch: number
  /** positions equal to the reference at the same index, anywhere */
  positionsEqual: number
  positions: number
  /** prefixMatch / positions */
  prefixFraction: number
  /** positionsEqual / positions */
  overallFraction: number
  /** teacher forcing (prefill over prompt + reference tokens): argmax == reference, fraction */
  teacherForcedFraction: number | null
  /**
   * median (top-1 − top-2) / std of this format's logits over the teacher-forced positions: small
   * values mean near-ties, where any rounding flips the greedy token (random weights give these)
   */
  medianRelativeMargin: number | null
}

export interface LocalFormatResult {
  format: WeightFormat
  load: { seconds: number, headSeconds: number, spanSeconds: number, spanBytesRead: number }
  /** rssAfterLoad still includes the JS copies of the weights awaiting GC; rssSteady is after the runs */
  memory: { rssAfterLoadMiB: number, rssSteadyMiB: number, loadPeakRssMiB: number, peakRssMiB: number }
  /** speeds: medians over the uncontended measured runs (see cpu.runsUsed); per-run values cover all runs */
  prefill: { tokens: number, tokensPerSecond: number, spanTokensPerSecond: number, secondsPerRun: number[] }
  decode: {
    tokens: number
    tokensPerSecond: number
    msPerToken: number
    /** of msPerToken: span forward and head (embed + logits, incl. worker hops) */
    spanMsPerToken: number
    headMsPerToken: number
    tokensPerSecondPerRun: number[]
    /** the warm-up generation's decode speed (fewer steps; shows first-run effects) */
    warmupTokensPerSecond: number | null
  }
  deterministic: boolean
  /**
   * CPU in cores during the measured generations: this process, and everything else on the
   * machine (other processes competing for the cores make every speed here lower)
   */
  cpu: {
    ownCores: number
    otherCores: number
    otherCoresPerRun: number[]
    /** time waited for other processes to go quiet before each measured run */
    idleWaitSecondsPerRun: number[]
    /** speeds are medians over the measured runs with otherCores < CONTENDED_CORES (all runs if none) */
    runsUsed: number
    /** every measured run competed with other processes: the speeds are low */
    contended: boolean
    loadAverageBefore: number
  }
  tokens: number[]
  /** vs the reference format's greedy tokens (f32 when measured; for the reference, vs itself) */
  agreement: Agreement | null
  loadBreakdown: LoadBreakdown | null
}

export interface LocalBenchResult {
  section: 'local'
  shape: BenchShape & { headDim: number, params: ShapeCounts, name: string }
  settings: { threads: number, promptTokens: number, decodeTokens: number, repeats: number, idleWaitSeconds: number, quick: boolean, headFormat: 'f32', aggregate: string }
  model: { dir: string, generated: boolean, generateSeconds: number }
  referenceFormat: WeightFormat
  formats: LocalFormatResult[]
  /** same-run ratios: format vs reference (>1 = larger value than the reference) */
  ratios: Array<{ format: WeightFormat, vs: WeightFormat, decodeSpeed: number, prefillSpeed: number, loadTime: number, peakRss: number, steadyRss: number }>
}

const CHILD = new URL('./local-run.ts', import.meta.url)
const inChild = async <T>(job: LocalJob): Promise<T> => await runChild<T>(CHILD, job, job.format)

export function agreement (tokens: number[], reference: number[], teacherForced: LocalRunResult['teacherForced']): Agreement {
  const n = Math.min(tokens.length, reference.length)
  let prefixMatch = 0
  while (prefixMatch < n && tokens[prefixMatch] === reference[prefixMatch]) prefixMatch++
  let positionsEqual = 0
  for (let i = 0; i < n; i++) if (tokens[i] === reference[i]) positionsEqual++
  return {
    prefixMatch,
    positionsEqual,
    positions: n,
    prefixFraction: round(prefixMatch / n, 4),
    overallFraction: round(positionsEqual / n, 4),
    teacherForcedFraction: teacherForced === null ? null : round(teacherForced.matches / teacherForced.positions, 4),
    medianRelativeMargin: teacherForced === null ? null : round(teacherForced.medianRelativeMargin, 4)
  }
}

/** other processes' average CPU use (cores) above which a generation counts as contended */
export const CONTENDED_CORES = 0.15

function summarise (r: LocalRunResult, o: LocalBenchOptions, breakdown: LoadBreakdown | null, loadAverageBefore: number): LocalFormatResult {
  // on a shared machine, keep the generations no other process competed with (all if none)
  const clean = r.runs.filter((t) => t.cpuOtherCores < CONTENDED_CORES)
  const runs = clean.length > 0 ? clean : r.runs
  const med = (f: (t: RunTiming) => number): number => median(runs.map(f))
  const decodeTps = runs.map((t) => o.decodeTokens / t.decodeSeconds)
  const decodeSeconds = med((t) => t.decodeSeconds)
  // span/head shares from the run with the median decode time
  const mid = runs.reduce((best, t) => Math.abs(t.decodeSeconds - decodeSeconds) < Math.abs(best.decodeSeconds - decodeSeconds) ? t : best)
  return {
    format: r.format,
    load: { seconds: round(r.load.headSeconds + r.load.spanSeconds), headSeconds: round(r.load.headSeconds), spanSeconds: round(r.load.spanSeconds), spanBytesRead: r.load.spanBytesRead },
    memory: { rssAfterLoadMiB: round(r.memory.rssAfterLoadBytes / MiB, 0), rssSteadyMiB: round(r.memory.rssAfterRunsBytes / MiB, 0), loadPeakRssMiB: round(r.memory.loadPeakRssBytes / MiB, 0), peakRssMiB: round(r.memory.peakRssBytes / MiB, 0) },
    prefill: {
      tokens: o.promptTokens,
      tokensPerSecond: round(o.promptTokens / med((t) => t.prefillSeconds), 2),
      spanTokensPerSecond: round(o.promptTokens / med((t) => t.prefillSpanSeconds), 2),
      secondsPerRun: r.runs.map((t) => round(t.prefillSeconds, 4))
    },
    decode: {
      tokens: o.decodeTokens,
      tokensPerSecond: round(median(decodeTps), 2),
      msPerToken: round((1000 * decodeSeconds) / o.decodeTokens),
      spanMsPerToken: round((1000 * mid.decodeSpanSeconds) / o.decodeTokens),
      headMsPerToken: round((1000 * mid.decodeHeadSeconds) / o.decodeTokens),
      tokensPerSecondPerRun: r.runs.map((t) => round(o.decodeTokens / t.decodeSeconds, 2)),
      warmupTokensPerSecond: r.warmup === null || r.warmup.decodeSeconds === 0 ? null : round(Math.min(4, o.decodeTokens) / r.warmup.decodeSeconds, 2)
    },
    deterministic: r.deterministic,
    cpu: {
      ownCores: round(r.cpu.own, 2),
      otherCores: round(r.cpu.others, 2),
      otherCoresPerRun: r.runs.map((t) => round(t.cpuOtherCores, 2)),
      idleWaitSecondsPerRun: r.runs.map((t) => round(t.idleWaitSeconds, 1)),
      runsUsed: runs.length,
      contended: clean.length === 0,
      loadAverageBefore: round(loadAverageBefore, 2)
    },
    tokens: r.tokens,
    agreement: null,
    loadBreakdown: breakdown === null
      ? null
      : { ...breakdown, buildSeconds: round(breakdown.buildSeconds), serializeSeconds: round(breakdown.serializeSeconds), sessionSeconds: round(breakdown.sessionSeconds) }
  }
}

export async function benchLocal (o: LocalBenchOptions): Promise<LocalBenchResult> {
  const shape = o.quick ? QUICK_SHAPE : TINYLLAMA_SHAPE
  const counts = shapeCounts(shape)
  const model = await ensureBenchModel(o.cacheDir, shape)
  if (!model.generated) log(`reusing the benchmark model in ${o.cacheDir}`)
  if (o.formats.includes('f32') && os.totalmem() < 1.5 * counts.f32Bytes) {
    // measured (bench section "load"): an f32 span holds its weights once, plus a few hundred MiB
    log(`warning: ${formatBytes(os.totalmem())} of RAM for ${formatBytes(counts.f32Bytes)} of f32 weights`)
  }
  // the reference runs first so the others can be teacher-forced on its tokens
  const referenceFormat: WeightFormat = o.formats.includes('f32') ? 'f32' : o.formats[0]
  const order = [referenceFormat, ...o.formats.filter((f) => f !== referenceFormat)]
  const prompt = randomTokens(o.promptTokens, 3, shape.vocab, 12345)
  const results: LocalFormatResult[] = []
  let reference: number[] | null = null
  for (const format of order) {
    const job: LocalJob = {
      mode: 'run', modelDir: model.dir, format, threads: o.threads, prompt, decodeTokens: o.decodeTokens, repeats: o.repeats,
      idleWaitSeconds: o.idleWaitSeconds, idleCores: CONTENDED_CORES, reference
    }
    let breakdown: LoadBreakdown | null = null
    if (o.loadBreakdown) {
      log(`${format}: load breakdown (separate process) …`)
      breakdown = await inChild<LoadBreakdown>({ ...job, mode: 'load-breakdown' })
    }
    const loadAverageBefore = os.loadavg()[0]
    log(`${format}: loading, then 1 warm-up + ${o.repeats} measured generation(s) of ${o.promptTokens} prompt + ${o.decodeTokens} decode tokens, threads=${o.threads} …`)
    const r = await inChild<LocalRunResult>(job)
    const s = summarise(r, o, breakdown, loadAverageBefore)
    if (reference === null) reference = r.tokens
    // for the reference itself this is 1/1 free-running, and teacher forcing on its own tokens
    // checks that one batched prefill picks the same tokens as step-by-step decoding
    s.agreement = agreement(r.tokens, reference, r.teacherForced)
    log(`${format}: load ${s.load.seconds.toFixed(1)} s, prefill ${s.prefill.tokensPerSecond.toFixed(1)} tok/s, decode ${s.decode.tokensPerSecond.toFixed(2)} tok/s, ` +
      `peak RSS ${s.memory.peakRssMiB} MiB, CPU ${s.cpu.ownCores} cores (other processes: ${s.cpu.otherCores}; ${s.cpu.contended ? 'every run contended: numbers are low' : `${s.cpu.runsUsed} of ${o.repeats} runs uncontended`})`)
    results.push(s)
  }
  const ref = results[0]
  const ratios = results.slice(1).map((s) => ({
    format: s.format,
    vs: ref.format,
    decodeSpeed: round(s.decode.tokensPerSecond / ref.decode.tokensPerSecond),
    prefillSpeed: round(s.prefill.tokensPerSecond / ref.prefill.tokensPerSecond),
    loadTime: round(s.load.seconds / ref.load.seconds),
    peakRss: round(s.memory.peakRssMiB / ref.memory.peakRssMiB),
    steadyRss: round(s.memory.rssSteadyMiB / ref.memory.rssSteadyMiB)
  }))
  return {
    section: 'local',
    shape: { name: o.quick ? 'quick (small Llama)' : 'TinyLlama-1.1B (random weights)', ...shape, headDim: shape.hidden / shape.heads, params: counts },
    settings: { threads: o.threads, promptTokens: o.promptTokens, decodeTokens: o.decodeTokens, repeats: o.repeats, idleWaitSeconds: o.idleWaitSeconds, quick: o.quick, headFormat: 'f32', aggregate: `median over measured runs where other processes used < ${CONTENDED_CORES} cores (all runs if none)` },
    model: { dir: model.dir, generated: model.generated, generateSeconds: round(model.seconds) },
    referenceFormat: ref.format,
    formats: results,
    ratios
  }
}
