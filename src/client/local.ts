// Local inference: the model's blocks run in this process (in worker threads), split into one
// or more spans exactly as peers would host them. This is the reference the swarm must match.
import { randomUUID } from 'node:crypto'
import { WorkerSpanEngine } from '../shards/worker/engine-client.ts'
import type { WeightFormat } from '../shards/span-graph.ts'
import type { BlockPipeline, RouteHop } from './generation.ts'

export interface LocalPipelineOptions {
  /** span boundaries, e.g. [[0, 2], [2, 4]]; default: one span of all blocks */
  spans?: Array<[number, number]>
  weightFormat?: WeightFormat
  threads?: number
  /** accept config.json keys strata does not know (the CLI's --allow-unknown-config; callers warn) */
  allowUnknownConfig?: boolean
  /** KV capacity of the session in positions (default: the model's max positions) */
  maxLength?: number
  /** where spans are cached once quantized or widened to f32 (see shards/span-cache.ts); default: not cached */
  spanCacheDir?: string
}

export class LocalPipeline implements BlockPipeline {
  readonly reroutes = 0
  private readonly sessionId = randomUUID()

  private constructor (private readonly engines: WorkerSpanEngine[]) {}

  static async load (modelDir: string, numLayers: number, opts: LocalPipelineOptions = {}): Promise<LocalPipeline> {
    const spans = opts.spans ?? [[0, numLayers]]
    const engines: WorkerSpanEngine[] = []
    try {
      for (const [start, end] of spans) {
        engines.push(await WorkerSpanEngine.load(modelDir, { start, end, weightFormat: opts.weightFormat, threads: opts.threads, allowUnknownConfig: opts.allowUnknownConfig, spanCacheDir: opts.spanCacheDir }))
      }
      const pipeline = new LocalPipeline(engines)
      const maxLength = opts.maxLength ?? engines[0].config.maxPositions
      for (const e of engines) await e.open(pipeline.sessionId, maxLength)
      return pipeline
    } catch (err) {
      await Promise.all(engines.map(async (e) => await e.dispose()))
      throw err
    }
  }

  async forward (hidden: Float32Array, position: number): Promise<Float32Array> {
    let h = hidden
    for (const e of this.engines) h = await e.step(this.sessionId, h, position)
    return h
  }

  async truncate (length: number): Promise<void> {
    for (const e of this.engines) await e.truncate(this.sessionId, length)
  }

  route (): RouteHop[] {
    return this.engines.map((e) => ({ peer: 'local', start: e.start, end: e.end }))
  }

  async close (): Promise<void> {
    await Promise.all(this.engines.map(async (e) => await e.dispose()))
  }
}
