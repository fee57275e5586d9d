// Child process of the local benchmark: measures ONE weight format, then exits, so every format
// starts from a fresh process (peak RSS from getrusage is per process, and memory freed by one
// format's engines cannot flatter or penalise the next).
//
// Protocol: the parent forks this file with an IPC channel and sends one LocalJob; the child
// answers with { ok: true, result } or { ok: false, error } and exits.
import '../../src/polyfill.ts'
import { randomUUID } from 'node:crypto'
import os from 'node:os'
import { WorkerHeadEngine, WorkerSpanEngine } from '../../src/shards/worker/engine-client.ts'
import { generateTokens, type BlockPipeline, type Head, type RouteHop } from '../../src/client/generation.ts'
import { loadModelConfig, type ModelConfig } from '../../src/shards/config.ts'
import { ModelWeights } from '../../src/shards/weights.ts'
import { buildSpanGraph, type WeightFormat } from '../../src/shards/span-graph.ts'
import { INLINE_LIMIT_BYTES, createSession } from '../../src/shards/ort-session.ts'
import { peakRssBytes } from './util.ts'

export interface LocalJob {
  mode: 'run' | 'load-breakdown'
  modelDir: string
  format: WeightFormat
  /** the head's embeddings and LM head (default f32, as LocalModel loads it) */
  headFormat?: WeightFormat
  threads: number
  prompt: number[]
  /** decode steps measured after the prompt (tokens generated = decodeTokens + 1) */
  decodeTokens: number
  /** measured generations (after one warm-up generation) */
  repeats: number
  /** before each measured generation, wait up to this many seconds for other processes to go quiet */
  idleWaitSeconds: number
  /** "quiet": other processes use fewer cores than this */
  idleCores: number
  /** greedy tokens of the reference format, for teacher-forced agreement; null: this is the reference (uses its own tokens) */
  reference: number[] | null
}

export interface RunTiming {
  /** prompt → first token: embed + span prefill + head + sampling */
  prefillSeconds: number
  /** span forward of the whole prompt alone */
  prefillSpanSeconds: number
  /** the `decodeTokens` decode steps, wall time */
  decodeSeconds: number
  /** of which: span forward, head (embed + logits) */
  decodeSpanSeconds: number
  decodeHeadSeconds: number
  /** CPU busy during this generation, in cores: this process, and all other processes */
  cpuOwnCores: number
  cpuOtherCores: number
  /** seconds spent waiting for the machine to go quiet before this generation */
  idleWaitSeconds: number
}

export interface LocalRunResult {
  format: WeightFormat
  load: {
    /** head worker (embeddings, final norm, LM head in f32, as LocalModel loads it) */
    headSeconds: number
    /** span worker: read weights, build the graph (transpose / quantize), create the onnxruntime session */
    spanSeconds: number
    spanBytesRead: number
  }
  memory: {
    rssBeforeLoadBytes: number
    /** right after loading: still holds the JS-side copies of the weights until the worker's GC runs */
    rssAfterLoadBytes: number
    /** after the measured generations: the steady state (weights in onnxruntime, KV caches) */
    rssAfterRunsBytes: number
    /** getrusage max RSS right after loading: the load-time high-water mark */
    loadPeakRssBytes: number
    /** getrusage max RSS at the end of the run */
    peakRssBytes: number
  }
  warmup: RunTiming | null
  runs: RunTiming[]
  /** greedy tokens of the first measured run */
  tokens: number[]
  /** every measured run produced the same tokens */
  deterministic: boolean
  /** CPU use during the measured generations, in cores (busy seconds / wall seconds, time-weighted) */
  cpu: { own: number, others: number }
  /** argmax of a single prefill over prompt + reference tokens vs the reference, position by position */
  teacherForced: TeacherForced | null
}

export interface TeacherForced {
  matches: number
  positions: number
  /** median over positions of (top-1 − top-2 logit) / std of the logits: how close greedy calls are */
  medianRelativeMargin: number
}

export interface LoadBreakdown {
  format: WeightFormat
  /** build the graph (reads only the norms: the matrices are read later) */
  buildSeconds: number
  /** bytes of the initializers in the graph */
  initializerBytes: number
  /** quantize and encode (inline) or write model.onnx + weights.bin (external data) */
  serializeSeconds: number
  external: boolean
  /** onnxruntime InferenceSession.create: parse, optimise, pre-pack */
  sessionSeconds: number
  peakRssBytes: number
}


/** A single-span pipeline that can start a fresh KV session for each measured generation. */
class BenchPipeline implements BlockPipeline {
  readonly reroutes = 0
  private sessionId = ''
  /** span forward durations (s) and row counts of the current generation */
  forwards: Array<{ rows: number, seconds: number }> = []

  constructor (private readonly engine: WorkerSpanEngine, private readonly H: number, private readonly maxLength: number) {}

  async reset (): Promise<void> {
    if (this.sessionId !== '') await this.engine.close(this.sessionId)
    this.sessionId = randomUUID()
    await this.engine.open(this.sessionId, this.maxLength)
    this.forwards = []
  }

  async forward (hidden: Float32Array, position: number): Promise<Float32Array> {
    const t0 = performance.now()
    const out = await this.engine.step(this.sessionId, hidden, position)
    this.forwards.push({ rows: hidden.length / this.H, seconds: (performance.now() - t0) / 1000 })
    return out
  }

  async truncate (length: number): Promise<void> {
    await this.engine.truncate(this.sessionId, length)
  }

  route (): RouteHop[] {
    return [{ peer: 'local', start: this.engine.start, end: this.engine.end }]
  }

  async close (): Promise<void> {
    if (this.sessionId !== '') await this.engine.close(this.sessionId)
  }
}

/** The head with its time per generation accumulated. */
class TimedHead implements Head {
  seconds: number[] = []
  constructor (private readonly head: WorkerHeadEngine) {}
  get config (): ModelConfig { return this.head.config }
  async embed (tokens: number[]): Promise<Float32Array> {
    const t0 = performance.now()
    try { return await this.head.embed(tokens) } finally { this.seconds.push((performance.now() - t0) / 1000) }
  }

  async logits (hidden: Float32Array): Promise<Float32Array> {
    const t0 = performance.now()
    try { return await this.head.logits(hidden) } finally { this.seconds.push((performance.now() - t0) / 1000) }
  }
}

/** One greedy generation through the real token loop, timed per token. */
async function generate (head: TimedHead, pipeline: BenchPipeline, prompt: number[], decodeTokens: number, idleWaitSeconds = 0): Promise<{ tokens: number[], timing: RunTiming }> {
  await pipeline.reset()
  const tokens: number[] = []
  const at: number[] = []
  // per token: head time (embed + logits) accumulated since the previous token
  const headPerToken: number[] = []
  const cpu0 = cpuTimes()
  const t0 = performance.now()
  for await (const e of generateTokens(head, pipeline, prompt, { maxNewTokens: decodeTokens + 1, temperature: 0, ignoreEos: true })) {
    at.push(performance.now())
    tokens.push(e.token)
    headPerToken.push(head.seconds.reduce((a, b) => a + b, 0))
    head.seconds = []
  }
  const wall = (performance.now() - t0) / 1000
  const cpu1 = cpuTimes()
  const f = pipeline.forwards
  return {
    tokens,
    timing: {
      prefillSeconds: (at[0] - t0) / 1000,
      prefillSpanSeconds: f[0].seconds,
      decodeSeconds: (at[at.length - 1] - at[0]) / 1000,
      decodeSpanSeconds: f.slice(1).reduce((a, b) => a + b.seconds, 0),
      decodeHeadSeconds: headPerToken.slice(1).reduce((a, b) => a + b, 0),
      cpuOwnCores: (cpu1.own - cpu0.own) / wall,
      cpuOtherCores: Math.max(0, (cpu1.machine - cpu0.machine) - (cpu1.own - cpu0.own)) / wall,
      idleWaitSeconds
    }
  }
}

/** Arg-max and the gap to the runner-up relative to the logits' standard deviation. */
function top2 (xs: Float32Array): { best: number, relativeMargin: number } {
  let best = 0
  let second = -1
  let sum = 0
  let sumSq = 0
  for (let i = 0; i < xs.length; i++) {
    sum += xs[i]
    sumSq += xs[i] * xs[i]
    if (i === 0) continue
    if (xs[i] > xs[best]) { second = best; best = i } else if (second < 0 || xs[i] > xs[second]) second = i
  }
  const mean = sum / xs.length
  const std = Math.sqrt(Math.max(0, sumSq / xs.length - mean * mean))
  return { best, relativeMargin: second < 0 || std === 0 ? 0 : (xs[best] - xs[second]) / std }
}

/** Busy CPU time of the whole machine and of this process, in seconds. */
function cpuTimes (): { machine: number, own: number } {
  let busy = 0
  for (const c of os.cpus()) busy += c.times.user + c.times.nice + c.times.sys + c.times.irq
  const u = process.cpuUsage()
  return { machine: busy / 1000, own: (u.user + u.system) / 1e6 }
}

/**
 * Waits until other processes use fewer than `cores` cores over a 1 s window, for at most
 * `maxSeconds`; returns the seconds waited. The benchmark shares its machine with whatever else
 * runs there, and every competing process lowers the measured speeds.
 */
async function waitIdle (maxSeconds: number, cores: number): Promise<number> {
  const t0 = performance.now()
  while ((performance.now() - t0) / 1000 < maxSeconds) {
    const a = cpuTimes()
    const w0 = performance.now()
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const b = cpuTimes()
    const others = Math.max(0, (b.machine - a.machine) - (b.own - a.own)) / ((performance.now() - w0) / 1000)
    if (others < cores) break
  }
  return (performance.now() - t0) / 1000
}

/**
 * Teacher forcing: one prefill over prompt + reference[0 .. n-2]; the argmax at each position
 * from the prompt's last onward is compared with the reference token generated there. Unlike
 * free-running agreement, one early disagreement does not derail every later position.
 */
async function teacherForced (head: WorkerHeadEngine, pipeline: BenchPipeline, prompt: number[], reference: number[]): Promise<TeacherForced> {
  await pipeline.reset()
  const H = head.config.hiddenSize
  const input = [...prompt, ...reference.slice(0, -1)]
  const hidden = await pipeline.forward(await head.embed(input), 0)
  let matches = 0
  const margins: number[] = []
  for (let i = 0; i < reference.length; i++) {
    const row = prompt.length - 1 + i
    const t = top2(await head.logits(hidden.slice(row * H, (row + 1) * H)))
    if (t.best === reference[i]) matches++
    margins.push(t.relativeMargin)
  }
  margins.sort((a, b) => a - b)
  return { matches, positions: reference.length, medianRelativeMargin: margins[margins.length >> 1] }
}

async function run (job: LocalJob): Promise<LocalRunResult> {
  const rssBeforeLoadBytes = process.memoryUsage().rss
  let t = performance.now()
  const headEngine = await WorkerHeadEngine.load(job.modelDir, { threads: job.threads, weightFormat: job.headFormat })
  const headSeconds = (performance.now() - t) / 1000
  let span: WorkerSpanEngine | null = null
  try {
    t = performance.now()
    span = await WorkerSpanEngine.load(job.modelDir, { start: 0, end: headEngine.config.numLayers, weightFormat: job.format, threads: job.threads })
    const spanSeconds = (performance.now() - t) / 1000
    const loadPeakRssBytes = peakRssBytes()
    const rssAfterLoadBytes = process.memoryUsage().rss

    const head = new TimedHead(headEngine)
    const pipeline = new BenchPipeline(span, headEngine.config.hiddenSize, job.prompt.length + job.decodeTokens + 1)
    // warm-up: same prompt length (allocates the prefill-sized buffers once), a few decode steps
    const warmup = job.repeats > 0 ? (await generate(head, pipeline, job.prompt, Math.min(4, job.decodeTokens))).timing : null
    const runs: RunTiming[] = []
    let tokens: number[] = []
    let deterministic = true
    for (let r = 0; r < job.repeats; r++) {
      const waited = job.idleWaitSeconds > 0 ? await waitIdle(job.idleWaitSeconds, job.idleCores) : 0
      const g = await generate(head, pipeline, job.prompt, job.decodeTokens, waited)
      runs.push(g.timing)
      if (r === 0) tokens = g.tokens
      else if (g.tokens.some((x, i) => x !== tokens[i])) deterministic = false
    }
    const rssAfterRunsBytes = process.memoryUsage().rss
    // time-weighted over the measured generations (idle waits excluded)
    const busy = (f: (t: RunTiming) => number): number => runs.reduce((n, t) => n + f(t) * (t.prefillSeconds + t.decodeSeconds), 0) / runs.reduce((n, t) => n + t.prefillSeconds + t.decodeSeconds, 0)
    const cpu = { own: busy((t) => t.cpuOwnCores), others: busy((t) => t.cpuOtherCores) }
    const tf = tokens.length > 0 ? await teacherForced(headEngine, pipeline, job.prompt, job.reference ?? tokens) : null
    await pipeline.close()
    return {
      format: job.format,
      load: { headSeconds, spanSeconds, spanBytesRead: span.info.bytesRead },
      memory: { rssBeforeLoadBytes, rssAfterLoadBytes, rssAfterRunsBytes, loadPeakRssBytes, peakRssBytes: peakRssBytes() },
      warmup,
      runs,
      tokens,
      deterministic,
      cpu,
      teacherForced: tf
    }
  } finally {
    await span?.dispose()
    await headEngine.dispose()
  }
}

/**
 * Where span load time goes: the steps of SpanEngine.load without the quantized-span cache, each
 * timed (createSession reports its own stages).
 */
async function loadBreakdown (job: LocalJob): Promise<LoadBreakdown> {
  const cfg = loadModelConfig(job.modelDir)
  const weights = new ModelWeights(job.modelDir)
  try {
    const t = performance.now()
    // reads only config-sized tensors (norms): the matrices are read while creating the session
    const graph = buildSpanGraph(cfg, weights, { start: 0, end: cfg.numLayers, weightFormat: job.format })
    const buildSeconds = (performance.now() - t) / 1000
    const initializerBytes = graph.initializerBytes
    const session = await createSession(graph, { threads: job.threads }, { prepack: true })
    await session.release()
    return { format: job.format, buildSeconds, initializerBytes, external: initializerBytes >= INLINE_LIMIT_BYTES, ...session.timings, peakRssBytes: peakRssBytes() }
  } finally {
    weights.close()
  }
}

process.once('message', (job: LocalJob) => {
  const work = job.mode === 'run' ? run(job) : loadBreakdown(job)
  work.then(
    (result) => process.send?.({ ok: true, result }, () => process.exit(0)),
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err))
      process.send?.({ ok: false, error: { name: e.name, message: e.message, stack: e.stack } }, () => process.exit(1))
    })
})
