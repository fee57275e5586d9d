// Checks swarm peers against local recomputation (`strata generate --verify`), and referees
// replica audits when the client has the weights. The client has
// the whole model directory: for every hop it feeds the same inputs, in the same step shapes,
// through a local engine of the same blocks and compares the outputs bit for bit. The engine is
// deterministic per block, and a block computes the same bits in whichever span it sits, so an
// honest peer's f32 output is bit-identical to the local one.
import { WorkerSpanEngine } from '../shards/worker/engine-client.ts'
import { defaultCacheDir } from '../shards/cache-dir.ts'
import { ModelError } from '../shards/errors.ts'
import { randomUUID } from 'node:crypto'
import type { HopCheck, HopInput, HopReferee, HopVerifier, VerifiedHop } from '../routing/index.ts'

export interface LocalVerifierOptions {
  /** compute threads per local engine */
  threads?: number
  /** accept config.json keys strata does not know (the CLI's --allow-unknown-config; callers warn) */
  allowUnknownConfig?: boolean
}

/** The model directory cannot recompute a span (e.g. a client-only copy without block weights). */
export class VerifierError extends ModelError {
  override name = 'VerifierError'
}

/**
 * One local engine per distinct span, loaded on first use and reused; one KV session per hop.
 * It is also the trusted referee of replica audits (`recompute`): when a peer and its replica
 * disagree, the client's own weights decide.
 */
export class LocalVerifier implements HopVerifier, HopReferee {
  /** computes with the checkpoint's weights, unquantized */
  readonly format = 'f32'
  private readonly engines = new Map<string, Promise<WorkerSpanEngine>>()
  private readonly sessions = new Map<string, WorkerSpanEngine>()

  constructor (private readonly modelDir: string, private readonly opts: LocalVerifierOptions = {}) {}

  async check (hop: VerifiedHop, hopKey: string, input: Float32Array, position: number, output: Float32Array): Promise<HopCheck> {
    let engine = this.sessions.get(hopKey)
    if (engine === undefined) {
      engine = await this.engine(hop.start, hop.end)
      await engine.open(hopKey, engine.config.maxPositions)
      this.sessions.set(hopKey, engine)
    }
    return sameBits(await engine.step(hopKey, input, position), output)
      ? { verdict: 'ok' }
      : { verdict: 'wrong', detail: `its output for blocks [${hop.start}, ${hop.end}) at position ${position} differs from the local recomputation` }
  }

  async recompute (hop: VerifiedHop, steps: HopInput[]): Promise<Float32Array> {
    const engine = await this.engine(hop.start, hop.end)
    const key = randomUUID()
    await engine.open(key, engine.config.maxPositions)
    try {
      let out: Float32Array = new Float32Array(0)
      for (const s of steps) out = await engine.step(key, s.hidden, s.position)
      return out
    } finally {
      await engine.close(key).catch(() => false)
    }
  }

  async truncate (hopKey: string, length: number): Promise<void> {
    await this.sessions.get(hopKey)?.truncate(hopKey, length)
  }

  async release (hopKey: string): Promise<void> {
    const engine = this.sessions.get(hopKey)
    if (engine === undefined) return
    this.sessions.delete(hopKey)
    await engine.close(hopKey).catch(() => false)
  }

  async close (): Promise<void> {
    this.sessions.clear()
    const engines = [...this.engines.values()]
    this.engines.clear()
    await Promise.all(engines.map(async (e) => await (await e.catch(() => null))?.dispose()))
  }

  private async engine (start: number, end: number): Promise<WorkerSpanEngine> {
    const key = `${start}:${end}`
    let engine = this.engines.get(key)
    if (engine === undefined) {
      engine = WorkerSpanEngine.load(this.modelDir, { start, end, threads: this.opts.threads, allowUnknownConfig: this.opts.allowUnknownConfig, spanCacheDir: defaultCacheDir() }).catch((err: Error) => {
        this.engines.delete(key)
        throw new VerifierError(`cannot recompute blocks [${start}, ${end}) to verify peers: ${err.message} (--verify needs the block weights in ${this.modelDir})`)
      })
      this.engines.set(key, engine)
    }
    return await engine
  }
}

/** Bit-for-bit equality (so -0 ≠ 0 and NaN payloads count). */
function sameBits (a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length)
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}
