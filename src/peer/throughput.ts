// How many tokens per second a peer can push through its span, as Petals announces it:
// min(compute, network). Compute is timed on the real span graph with single-token decode steps
// on a scratch session: a few warm-up steps (the first runs allocate), then several rounds of
// steps, each round's fastest step counting, and the median of those. Other processes (a peer
// starting next to this one, a build) can only slow a step down, so the fast end of each round is
// this hardware's speed, and the median keeps one lucky round from deciding it. The figure is kept
// per block (span length / step time) and scaled back to the span, so a cached figure serves any
// span of the same model.
import type { WorkerSpanEngine } from '../shards/worker/engine-client.ts'

/** What timing needs of a span engine. */
export type StepEngine = Pick<WorkerSpanEngine, 'start' | 'end' | 'config' | 'open' | 'step' | 'truncate' | 'close'>

export interface StepTiming {
  /** untimed steps first */
  warmupSteps: number
  /** timed rounds; the median of their fastest steps counts */
  rounds: number
  /** a round runs steps for this long (at least one step), ms */
  roundMs: number
  /** steps per round at most */
  maxStepsPerRound: number
  /** positions the scratch session cycles through (truncated back after the warm-up), so that every step sees a short context */
  contextPositions: number
}

export const defaultStepTiming: StepTiming = { warmupSteps: 3, rounds: 5, roundMs: 200, maxStepsPerRound: 500, contextPositions: 64 }

/** Seconds one single-token decode step through the whole span takes on this hardware. */
export async function stepSeconds (engine: StepEngine, timing: StepTiming = defaultStepTiming): Promise<number> {
  const positions = Math.min(engine.config.maxPositions, timing.contextPositions)
  if (positions <= timing.warmupSteps) throw new RangeError(`${positions} positions leave no room to time steps after ${timing.warmupSteps} warm-up steps`)
  const id = `__throughput_${process.pid}_${Date.now()}`
  const H = engine.config.hiddenSize
  // (1, 1, H): a smooth non-zero hidden state, so norms and softmax take their usual paths
  const row = Float32Array.from({ length: H }, (_, i) => Math.sin(i))
  await engine.open(id, positions)
  try {
    let position = 0
    for (; position < timing.warmupSteps; position++) await engine.step(id, row, position)
    const fastest: number[] = []
    for (let round = 0; round < timing.rounds; round++) {
      const started = performance.now()
      let best = Infinity
      for (let steps = 0; steps < timing.maxStepsPerRound && (steps === 0 || performance.now() - started < timing.roundMs); steps++) {
        if (position === positions) {
          await engine.truncate(id, timing.warmupSteps)
          position = timing.warmupSteps
        }
        const t0 = performance.now()
        await engine.step(id, row, position++)
        best = Math.min(best, performance.now() - t0)
      }
      fastest.push(best / 1000)
    }
    return Math.max(median(fastest), 1e-7)
  } finally {
    await engine.close(id)
  }
}

/** Tokens/s one block sustains on this hardware: the span's step time spread over its blocks. */
export async function measureBlockThroughput (engine: StepEngine, timing?: StepTiming): Promise<number> {
  return (engine.end - engine.start) / await stepSeconds(engine, timing)
}

/** What a peer announces: min(compute / span length, network); network undefined when unknown. */
export function spanThroughput (blockTokensPerSecond: number, spanLength: number, networkTokensPerSecond?: number): number {
  return Math.min(blockTokensPerSecond / spanLength, networkTokensPerSecond ?? Infinity)
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
