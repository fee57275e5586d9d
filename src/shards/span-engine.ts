// Runs one span graph and keeps a KV cache per inference session. Synchronous-looking but
// compute-heavy: in production it lives inside a worker thread (see worker/).
import * as ort from 'onnxruntime-node'
import { loadModelConfig, type ModelConfig } from './config.ts'
import { ModelWeights } from './weights.ts'
import { buildSpanGraph, isQuantized, kvHeadDim, spanIo, type WeightFormat } from './span-graph.ts'
import { createSession, sessionFromFile, type LoadTimings, type RuntimeOptions, type OrtSession } from './ort-session.ts'
import { SpanCache, type SpanCacheOutcome } from './span-cache.ts'
import { EngineInputError } from './errors.ts'

export interface SpanEngineOptions extends RuntimeOptions {
  start: number
  end: number
  /** matrix storage; default: f16 for F16 checkpoints, else f32 */
  weightFormat?: WeightFormat
  /** accept config.json keys strata does not know (the CLI's --allow-unknown-config; callers warn) */
  allowUnknownConfig?: boolean
  /** where int8/int4 spans are cached once quantized (see span-cache.ts); default: not cached */
  quantCacheDir?: string
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
      if (!isQuantized(weightFormat) || opts.quantCacheDir === undefined) {
        const session = await createSession(graph, opts, { prepack: isQuantized(weightFormat) })
        return new SpanEngine(config, opts.start, opts.end, weightFormat, session, weights.bytesRead, null)
      }
      const cache = new SpanCache(opts.quantCacheDir)
      const id = cache.keyOf({ files: weights.usedFiles, format: weightFormat, start: opts.start, end: opts.end, skeleton: graph.skeleton() })
      const t = performance.now()
      let { model, outcome } = cache.modelFor(id, graph)
      let session: OrtSession
      try {
        session = await sessionFromFile(model, graph.fedWeights, opts, { prepack: true }, (performance.now() - t) / 1000)
      } catch (err) {
        // a whole, checksummed entry onnxruntime still refuses: built by an incompatible version
        if (outcome !== 'hit') throw err
        cache.drop(id)
        model = cache.modelFor(id, graph).model
        outcome = 'rebuilt'
        session = await sessionFromFile(model, graph.fedWeights, opts, { prepack: true })
      }
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
    const s = this.state(sessionId)
    const H = this.config.hiddenSize
    if (hidden.length === 0 || hidden.length % H !== 0) throw new EngineInputError(`hidden states of ${hidden.length} floats are not a whole number of ${H}-wide rows`)
    const n = hidden.length / H
    if (position !== s.length) throw new EngineInputError(`step at position ${position} but the session holds ${s.length} positions`)
    if (s.length + n > s.maxLength) throw new EngineInputError(`step of ${n} positions would exceed the session's max length ${s.maxLength} (holds ${s.length})`)
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

  private state (sessionId: string): KvState {
    const s = this.sessions.get(sessionId)
    if (s === undefined) throw new EngineInputError(`no open session ${sessionId}`)
    return s
  }
}
