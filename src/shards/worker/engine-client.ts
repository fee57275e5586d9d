// Main-thread handles for engines running in worker threads, so onnxruntime's blocking `run`
// never stalls the event loop (and with it the libp2p node).
import { Worker } from 'node:worker_threads'
import type { BatchResult, Call, LoadRequest, Response } from './rpc.ts'
import type { ModelConfig } from '../config.ts'
import type { WeightFormat } from '../span-graph.ts'
import type { SpanEngineOptions } from '../span-engine.ts'
import type { SpanCacheOutcome } from '../span-cache.ts'
import type { HeadEngineOptions } from '../head-engine.ts'
import { EngineInputError, ModelError } from '../errors.ts'
import { StepBatcher } from './step-batcher.ts'

/** from source (tsx) the worker first registers the TypeScript loader; compiled (dist/) it runs as is */
const ENTRY = import.meta.url.endsWith('.ts') ? new URL('./entry.mjs', import.meta.url) : new URL('./engine-worker.js', import.meta.url)

/** Rebuilds a worker-side error as the matching class on this side. */
function reviveError (e: { name: string, message: string }): Error {
  const err = e.name === 'EngineInputError' ? new EngineInputError(e.message) : /Model|Safetensors|Tensor/.test(e.name) ? new ModelError(e.message) : new Error(e.message)
  err.name = e.name
  return err
}

class EngineWorker {
  private readonly worker: Worker
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  private dead: Error | null = null

  constructor () {
    this.worker = new Worker(ENTRY)
    this.worker.on('message', (res: Response) => {
      const p = this.pending.get(res.id)
      if (p === undefined) return
      this.pending.delete(res.id)
      if (res.ok) p.resolve(res.value)
      else p.reject(reviveError(res.error))
    })
    const fail = (err: Error): void => {
      this.dead = err
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
    }
    this.worker.on('error', fail)
    this.worker.on('exit', (code) => fail(new Error(`engine worker exited with code ${code}`)))
  }

  async call<T> (call: Call, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.dead !== null) throw this.dead
    const id = this.nextId++
    return await new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.worker.postMessage({ id, call }, transfer)
    })
  }

  async terminate (): Promise<void> {
    if (this.dead === null) {
      try { await this.call({ op: 'dispose' }) } catch { /* worker already failing: terminate anyway */ }
    }
    await this.worker.terminate()
  }
}

async function loadWorker<T> (load: LoadRequest): Promise<{ worker: EngineWorker, info: T }> {
  const worker = new EngineWorker()
  try {
    return { worker, info: await worker.call<T>({ op: 'load', load }) }
  } catch (err) {
    await worker.terminate()
    throw err
  }
}

export interface SpanInfo {
  weightFormat: WeightFormat
  kvBytesPerToken: number
  bytesRead: number
  cacheOutcome: SpanCacheOutcome | null
  config: ModelConfig
}

/**
 * A span of blocks computing in its own worker thread; one KV cache per session id. Steps of
 * different sessions that meet at the engine run as batched graph calls (see StepBatcher).
 */
export class WorkerSpanEngine {
  private readonly batcher: StepBatcher

  private constructor (private readonly worker: EngineWorker, readonly start: number, readonly end: number, readonly info: SpanInfo) {
    this.batcher = new StepBatcher({
      batch: async (steps) => (await worker.call<BatchResult>({ op: 'stepBatch', steps })).map((r) => r.ok ? r.hidden : reviveError(r.error)),
      single: async ({ sessionId, hidden, position }) => await worker.call<Float32Array>({ op: 'step', sessionId, hidden, position })
    }, info.config.hiddenSize)
  }

  /** called with the size of every decode batch the engine runs (1: a decode step run alone) */
  set onBatch (f: ((size: number) => void) | null) { this.batcher.onBatch = f }
  get onBatch (): ((size: number) => void) | null { return this.batcher.onBatch }

  static async load (modelDir: string, options: SpanEngineOptions): Promise<WorkerSpanEngine> {
    const { worker, info } = await loadWorker<SpanInfo>({ kind: 'span', modelDir, options })
    return new WorkerSpanEngine(worker, options.start, options.end, info)
  }

  get config (): ModelConfig { return this.info.config }

  async open (sessionId: string, maxLength: number, exitEnd?: number): Promise<void> {
    await this.worker.call({ op: 'open', sessionId, maxLength, exitEnd })
  }

  /** hidden (1, n, H) for positions [position, position + n) → output hidden (1, n, H). */
  async step (sessionId: string, hidden: Float32Array, position: number): Promise<Float32Array> {
    return await this.batcher.step({ sessionId, hidden, position })
  }

  async truncate (sessionId: string, length: number): Promise<void> {
    await this.worker.call({ op: 'truncate', sessionId, length })
  }

  async close (sessionId: string): Promise<boolean> {
    this.batcher.forget(sessionId)
    return await this.worker.call<boolean>({ op: 'close', sessionId })
  }

  async dispose (): Promise<void> {
    await this.worker.terminate()
  }
}

/** Embeddings + final norm + LM head in a worker thread. */
export class WorkerHeadEngine {
  private constructor (private readonly worker: EngineWorker, readonly config: ModelConfig) {}

  static async load (modelDir: string, options: HeadEngineOptions = {}): Promise<WorkerHeadEngine> {
    const { worker, info } = await loadWorker<{ config: ModelConfig }>({ kind: 'head', modelDir, options })
    return new WorkerHeadEngine(worker, info.config)
  }

  async embed (tokens: number[]): Promise<Float32Array> {
    return await this.worker.call<Float32Array>({ op: 'embed', tokens })
  }

  /** see HeadEngine.logits */
  async logits (hidden: Float32Array, allRows = false): Promise<Float32Array> {
    return await this.worker.call<Float32Array>({ op: 'logits', hidden, allRows })
  }

  async dispose (): Promise<void> {
    await this.worker.terminate()
  }
}
