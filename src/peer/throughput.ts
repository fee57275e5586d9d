// Measures how many tokens per second this peer can push through its span: a few real decode
// steps of the span graph on a scratch session.
import type { WorkerSpanEngine } from '../shards/worker/engine-client.ts'

export async function measureComputeThroughput (engine: WorkerSpanEngine, steps = 4): Promise<number> {
  const id = `__throughput_${process.pid}_${Date.now()}`
  const H = engine.config.hiddenSize
  const row = Float32Array.from({ length: H }, (_, i) => Math.sin(i))
  await engine.open(id, steps + 2)
  try {
    await engine.step(id, row, 0) // warm-up: first run allocates
    const t0 = performance.now()
    for (let i = 1; i <= steps; i++) await engine.step(id, row, i)
    const seconds = (performance.now() - t0) / 1000
    return steps / Math.max(seconds, 1e-6)
  } finally {
    await engine.close(id)
  }
}
