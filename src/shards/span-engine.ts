// Runs one span graph and keeps a KV cache per inference session. Synchronous-looking but
// compute-heavy: in production it lives inside a worker thread (see worker/).
import * as ort from 'onnxruntime-node'
import { loadModelConfig, type ModelConfig } from './config.ts'
import { ModelWeights } from './weights.ts'
import { buildSpanGraph, isQuantized, kvHeadDim, spanIo, type WeightFormat } from './span-graph.ts'
import { createSession, sessionFromFile, INLINE_LIMIT_BYTES, type LoadTimings, type RuntimeOptions, type OrtSession } from './ort-session.ts'
import { SpanCache, type SpanCacheOutcome } from './span-cache.ts'
import { EngineInputError } from './errors.ts'

export interface SpanEngineOptions extends RuntimeOptions {
  start: number
  end: number
  /** matrix storage; default: f16 for F16 checkpoints, else f32 */
  weightFormat?: WeightFormat
  /** accept config.json keys strata does not know (the CLI's --allow-unknown-config; callers warn) */
  allowUnknownConfig?: boolean
  /** where spans are cached once quantized or widened to f32 (see span-cache.ts); default: not cached */
  spanCacheDir?: string
}

/** One session's decode step in a batch (see SpanEngine.stepBatch). */
export interface BatchStep {
  sessionId: string
  /** (1, 1, H): exactly one position */
  hidden: Float32Array
  position: number
}

interface KvState {
  /** positions held */
  length: number
  maxLength: number
  /** the session's outputs are those of block exitEnd - 1 (≤ the span's end) */
  exitEnd: number
  fetches: string[]
  /** per block in the span: (1, kvHeads, length, kvHeadDim) each */
  keys: ort.Tensor[]
  values: ort.Tensor[]
}

export class SpanEngine {
  private readonly sessions = new Map<string, KvState>()

  private constructor (
    readonly config: ModelConfig,
    readonly start: number,
    readonly end: number,
    readonly weightFormat: WeightFormat,
    private readonly ort: OrtSession,
    /** bytes of weights read from the model files to build this span */
    readonly bytesRead: number,
    /** what the quantized-span cache did for this load (null: not used) */
    readonly cacheOutcome: SpanCacheOutcome | null
  ) {}

  static async load (modelDir: string, opts: SpanEngineOptions): Promise<SpanEngine> {
    const config = loadModelConfig(modelDir, { allowUnknownKeys: opts.allowUnknownConfig })
    if (!Number.isInteger(opts.start) || !Number.isInteger(opts.end) || opts.start < 0 || opts.end > config.numLayers || opts.start >= opts.end) {
      throw new EngineInputError(`span [${opts.start}, ${opts.end}) is not within the model's ${config.numLayers} blocks`)
    }
    const weights = new ModelWeights(modelDir)
    try {
      const weightFormat = opts.weightFormat ?? (config.torchDtype === 'float16' ? 'f16' : 'f32')
      const graph = buildSpanGraph(config, weights, { start: opts.start, end: opts.end, weightFormat })
      // weights JS produces — quantized, or 16-bit ones widened to f32 — are written once into the
      // span cache and loaded from there afterwards; an F32 checkpoint's are mapped where they lie.
      // Pre-packed, always: see ort-session.ts (batch-invariant bits, faster decode)
      if (opts.spanCacheDir === undefined || (!isQuantized(weightFormat) && graph.producedBytes < INLINE_LIMIT_BYTES)) {
        const session = await createSession(graph, opts, { prepack: true })
        return new SpanEngine(config, opts.start, opts.end, weightFormat, session, weights.bytesRead, null)
      }
      const cache = new SpanCache(opts.spanCacheDir)
      const id = cache.keyOf({ files: weights.usedFiles, format: weightFormat, start: opts.start, end: opts.end, skeleton: graph.skeleton() })
      let outcome: SpanCacheOutcome = 'stored'
      const found = cache.find(id)
      if (found !== null) {
        // onnxruntime loads the entry while its checksums are read
        const loading = sessionFromFile(found.model, opts, { prepack: true }).catch(() => null)
        const [session, intact] = await Promise.all([loading, found.intact])
        if (session !== null && intact) return new SpanEngine(config, opts.start, opts.end, weightFormat, session, weights.bytesRead, 'hit')
        // damaged, or whole but refused by onnxruntime (built by an incompatible version)
        await session?.release()
        outcome = 'rebuilt'
      }
      const t = performance.now()
      const model = await cache.store(id, graph)
      const session = await sessionFromFile(model, opts, { prepack: true }, (performance.now() - t) / 1000)
      return new SpanEngine(config, opts.start, opts.end, weightFormat, session, weights.bytesRead, outcome)
    } finally {
      weights.close()
    }
  }

  /** where this span's load time went */
  get loadTimings (): LoadTimings {
    return this.ort.timings
  }

  /** KV-cache bytes one position costs in this span. */
  get kvBytesPerToken (): number {
    return (this.end - this.start) * 2 * this.config.numKvHeads * kvHeadDim(this.config) * 4
  }

  get openSessions (): number {
    return this.sessions.size
  }

  /** Positions currently held across all sessions (for memory accounting). */
  get heldTokens (): number {
    let n = 0
    for (const s of this.sessions.values()) n += s.length
    return n
  }

  /**
   * Opens a KV cache for `sessionId`. With `exitEnd` < end, steps return the hidden states after
   * block exitEnd - 1 (the later blocks still run, keeping their caches consistent).
   */
  open (sessionId: string, maxLength: number, exitEnd = this.end): void {
    if (this.sessions.has(sessionId)) throw new EngineInputError(`session ${sessionId} is already open`)
    if (!Number.isInteger(exitEnd) || exitEnd <= this.start || exitEnd > this.end) throw new EngineInputError(`session end ${exitEnd} is outside the span (${this.start}, ${this.end}]`)
    if (!Number.isInteger(maxLength) || maxLength <= 0 || maxLength > this.config.maxPositions) {
      throw new EngineInputError(`max length ${maxLength} must be between 1 and the model's ${this.config.maxPositions} positions`)
    }
    const empty = (): ort.Tensor => new ort.Tensor('float32', new Float32Array(0), [1, this.config.numKvHeads, 0, kvHeadDim(this.config)])
    const n = this.end - this.start
    const fetches = [spanIo.hiddenAfter(exitEnd - 1, this.end)]
    for (let l = this.start; l < this.end; l++) fetches.push(spanIo.presentKey(l), spanIo.presentValue(l))
    this.sessions.set(sessionId, { length: 0, maxLength, exitEnd, fetches, keys: Array.from({ length: n }, empty), values: Array.from({ length: n }, empty) })
  }

  /**
   * Feeds `hidden` (1, n, H) for positions [position, position + n) and returns the span's output
   * hidden states (1, n, H). `position` must equal the positions already held.
   */
  async step (sessionId: string, hidden: Float32Array, position: number): Promise<Float32Array> {
    const H = this.config.hiddenSize
    if (hidden.length === 0 || hidden.length % H !== 0) throw new EngineInputError(`hidden states of ${hidden.length} floats are not a whole number of ${H}-wide rows`)
    const n = hidden.length / H
    const s = this.checkStep(sessionId, n, position)
    const total = s.length + n
    const feeds: Record<string, ort.Tensor> = {
      [spanIo.hidden]: new ort.Tensor('float32', hidden, [1, n, H]),
      [spanIo.seqlensK]: new ort.Tensor('int32', new Int32Array([total - 1]), [1]),
      [spanIo.totalSeqLen]: new ort.Tensor('int32', new Int32Array([total]), [])
    }
    for (let l = this.start; l < this.end; l++) {
      feeds[spanIo.pastKey(l)] = s.keys[l - this.start]
      feeds[spanIo.pastValue(l)] = s.values[l - this.start]
    }
    const out = await this.ort.run(feeds, s.fetches)
    for (let l = this.start; l < this.end; l++) {
      s.keys[l - this.start] = out[spanIo.presentKey(l)]
      s.values[l - this.start] = out[spanIo.presentValue(l)]
    }
    s.length = total
    return out[s.fetches[0]].data as Float32Array
  }

  /**
   * One decode step (one position each) of several sessions as ONE graph call with batch B.
   * Each row's past is its own KV cache, copied into a batch buffer padded to the longest past
   * (GroupQueryAttention reads only the first seqlens_k[b] positions of row b), and each row's
   * present is copied back out to that session's own cache. Every step is checked on its own
   * first: a bad one gets its error in its slot and the others run without it.
   * Returns one output row (1, 1, H) or one error per step, in order.
   */
  async stepBatch (steps: readonly BatchStep[]): Promise<Array<Float32Array | Error>> {
    const results: Array<Float32Array | Error> = new Array(steps.length)
    const rows: Array<{ at: number, s: KvState, hidden: Float32Array }> = []
    const taken = new Set<string>()
    for (let i = 0; i < steps.length; i++) {
      const { sessionId, hidden, position } = steps[i]
      try {
        if (hidden.length !== this.config.hiddenSize) throw new EngineInputError(`a batched step carries one position: ${this.config.hiddenSize} floats, got ${hidden.length}`)
        if (taken.has(sessionId)) throw new EngineInputError(`session ${sessionId} has two steps in one batch`)
        const s = this.checkStep(sessionId, 1, position)
        taken.add(sessionId)
        rows.push({ at: i, s, hidden })
      } catch (err) {
        results[i] = err as Error
      }
    }
    for (const group of paddingGroups(rows, (r) => r.s.length)) {
      if (group.length > 1) {
        const outs = await this.runBatch(group.map((r) => r.s), group.map((r) => r.hidden))
        group.forEach((r, b) => { results[r.at] = outs[b] })
      } else {
        // a lone step runs the unbatched path
        const r = group[0]
        results[r.at] = await this.step(steps[r.at].sessionId, r.hidden, r.s.length).catch((err: Error) => err)
      }
    }
    return results
  }

  /** Rolls the session back to its first `length` positions (speculative-decoding rollback). */
  truncate (sessionId: string, length: number): void {
    const s = this.state(sessionId)
    if (!Number.isInteger(length) || length < 0 || length > s.length) throw new EngineInputError(`cannot truncate to ${length}: the session holds ${s.length} positions`)
    if (length === s.length) return
    const kv = this.config.numKvHeads
    const D = kvHeadDim(this.config)
    const cut = (t: ort.Tensor): ort.Tensor => {
      const src = t.data as Float32Array
      const out = new Float32Array(kv * length * D)
      for (let h = 0; h < kv; h++) out.set(src.subarray(h * s.length * D, (h * s.length + length) * D), h * length * D)
      return new ort.Tensor('float32', out, [1, kv, length, D])
    }
    s.keys = s.keys.map(cut)
    s.values = s.values.map(cut)
    s.length = length
  }

  close (sessionId: string): boolean {
    return this.sessions.delete(sessionId)
  }

  async dispose (): Promise<void> {
    this.sessions.clear()
    await this.ort.release()
  }

  /** The session a step of `n` positions at `position` may run on (else why not). */
  private checkStep (sessionId: string, n: number, position: number): KvState {
    const s = this.state(sessionId)
    if (position !== s.length) throw new EngineInputError(`step at position ${position} but the session holds ${s.length} positions`)
    if (s.length + n > s.maxLength) throw new EngineInputError(`step of ${n} positions would exceed the session's max length ${s.maxLength} (holds ${s.length})`)
    return s
  }

  /** Runs one position of each of `rows` (B ≥ 2 checked sessions) as one batch; see stepBatch. */
  private async runBatch (rows: KvState[], hidden: Float32Array[]): Promise<Float32Array[]> {
    const B = rows.length
    const H = this.config.hiddenSize
    const kv = this.config.numKvHeads
    const D = kvHeadDim(this.config)
    const past = Math.max(...rows.map((s) => s.length))
    const x = new Float32Array(B * H)
    hidden.forEach((h, b) => x.set(h, b * H))
    const feeds: Record<string, ort.Tensor> = {
      [spanIo.hidden]: new ort.Tensor('float32', x, [B, 1, H]),
      [spanIo.seqlensK]: new ort.Tensor('int32', Int32Array.from(rows, (s) => s.length), [B]),
      [spanIo.totalSeqLen]: new ort.Tensor('int32', new Int32Array([past + 1]), [])
    }
    // (B, kv, past, D): row b's (kv, length_b, D) cache at the start of each head's stretch
    const gather = (caches: ort.Tensor[]): ort.Tensor => {
      const out = new Float32Array(B * kv * past * D)
      rows.forEach((s, b) => {
        const src = caches[b].data as Float32Array
        for (let h = 0; h < kv; h++) out.set(src.subarray(h * s.length * D, (h + 1) * s.length * D), (b * kv + h) * past * D)
      })
      return new ort.Tensor('float32', out, [B, kv, past, D])
    }
    const fetches = new Set<string>()
    for (const s of rows) fetches.add(s.fetches[0])
    for (let l = this.start; l < this.end; l++) {
      feeds[spanIo.pastKey(l)] = gather(rows.map((s) => s.keys[l - this.start]))
      feeds[spanIo.pastValue(l)] = gather(rows.map((s) => s.values[l - this.start]))
      fetches.add(spanIo.presentKey(l)).add(spanIo.presentValue(l))
    }
    const out = await this.ort.run(feeds, [...fetches])
    // (B, kv, T, D) → row b's own (1, kv, length_b + 1, D)
    const scatter = (t: ort.Tensor, b: number, length: number): ort.Tensor => {
      const T = t.dims[2]
      const src = t.data as Float32Array
      const own = new Float32Array(kv * length * D)
      for (let h = 0; h < kv; h++) own.set(src.subarray((b * kv + h) * T * D, ((b * kv + h) * T + length) * D), h * length * D)
      return new ort.Tensor('float32', own, [1, kv, length, D])
    }
    return rows.map((s, b) => {
      const total = s.length + 1
      for (let l = this.start; l < this.end; l++) {
        s.keys[l - this.start] = scatter(out[spanIo.presentKey(l)], b, total)
        s.values[l - this.start] = scatter(out[spanIo.presentValue(l)], b, total)
      }
      s.length = total
      return (out[s.fetches[0]].data as Float32Array).subarray(b * H, (b + 1) * H)
    })
  }

  private state (sessionId: string): KvState {
    const s = this.sessions.get(sessionId)
    if (s === undefined) throw new EngineInputError(`no open session ${sessionId}`)
    return s
  }
}

/** positions of padding a row of a batch may bring beyond its own past at no question */
const PADDING_SLACK = 64

/**
 * Splits rows into batches whose padded pasts (rows × longest past) stay within twice their real
 * positions plus a little slack: one long session does not make a batch of short ones hold (and
 * copy) its length each. Longest first; rows of similar lengths end up in one batch.
 */
export function paddingGroups<T> (rows: readonly T[], lengthOf: (row: T) => number): T[][] {
  const sorted = [...rows].sort((a, b) => lengthOf(b) - lengthOf(a))
  const groups: T[][] = []
  let group: T[] = []
  let real = 0
  for (const row of sorted) {
    const longest = group.length === 0 ? lengthOf(row) : lengthOf(group[0])
    const n = group.length + 1
    if (group.length > 0 && n * longest > 2 * (real + lengthOf(row)) + PADDING_SLACK * n) {
      groups.push(group)
      group = []
      real = 0
    }
    group.push(row)
    real += lengthOf(row)
  }
  if (group.length > 0) groups.push(group)
  return groups
}
