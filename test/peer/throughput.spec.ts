import assert from 'node:assert/strict'
import { pino } from 'pino'
import { peerThroughput } from '../../src/peer/announced-throughput.ts'
import { spanThroughput, stepSeconds, type StepEngine } from '../../src/peer/throughput.ts'
import { createSwarmNode } from '../../src/routing/index.ts'
import { WorkerSpanEngine } from '../../src/shards/worker/engine-client.ts'
import type { ModelConfig } from '../../src/shards/config.ts'
import { shapes, tempDir, tinyModel } from '../helpers/models.ts'

const silent = pino({ level: 'silent' })

/** An engine whose n-th step (0-based, warm-up included) takes `ms(n)` milliseconds; records positions and truncations. */
function fakeEngine (ms: (n: number) => number, maxPositions = 2048): StepEngine & { positions: number[], truncations: number[] } {
  const positions: number[] = []
  const truncations: number[] = []
  return {
    start: 2,
    end: 6,
    config: { hiddenSize: 8, maxPositions } as ModelConfig,
    positions,
    truncations,
    open: async () => {},
    step: async (_id: string, hidden: Float32Array, position: number) => {
      await new Promise((resolve) => setTimeout(resolve, ms(positions.length)))
      positions.push(position)
      return hidden
    },
    truncate: async (_id: string, length: number) => { truncations.push(length) },
    close: async () => true
  }
}

describe('peer: compute throughput', () => {
  it("counts each round's fastest step and the median round: slow warm-up, stalls and one lucky round do not decide", async () => {
    const warmup = [300, 300, 300]
    // 5 rounds of 3 steps: 10 ms is this hardware's speed, 100 ms a stall, 0 ms a lucky round
    const rounds = [[100, 10, 100], [10, 100, 10], [0, 100, 100], [100, 100, 10], [10, 10, 10]]
    const durations = [...warmup, ...rounds.flat()]
    const seconds = await stepSeconds(fakeEngine((n) => durations[n]), { warmupSteps: 3, rounds: 5, roundMs: 1e9, maxStepsPerRound: 3, contextPositions: 64 })
    assert.ok(seconds > 0.009 && seconds < 0.05, `step ${seconds} s`)
  })

  it('keeps the context short by truncating the scratch session back, within the model positions', async () => {
    const engine = fakeEngine(() => 0, 6)
    await stepSeconds(engine, { warmupSteps: 2, rounds: 2, roundMs: 1e9, maxStepsPerRound: 10, contextPositions: 64 })
    assert.equal(engine.positions.length, 22)
    assert.deepEqual(engine.positions.slice(0, 9), [0, 1, 2, 3, 4, 5, 2, 3, 4])
    assert.ok(engine.truncations.length === 4 && engine.truncations.every((t) => t === 2))
    await assert.rejects(stepSeconds(fakeEngine(() => 0, 2), { warmupSteps: 2, rounds: 1, roundMs: 0, maxStepsPerRound: 1, contextPositions: 64 }), RangeError)
  })

  it('announces min(compute per block / span length, network)', () => {
    assert.equal(spanThroughput(100, 4), 25)
    assert.equal(spanThroughput(100, 4, 10), 10)
    assert.equal(spanThroughput(100, 4, 1000), 25)
  })

  it('measures a real span once, then reads the figure from the cache', async function () {
    const dir = tinyModel('gqa', shapes.gqa)
    const cacheDir = tempDir('tp-')
    const node = await createSwarmNode()
    const engine = await WorkerSpanEngine.load(dir, { start: 0, end: 2, threads: 1 })
    try {
      const sources = { modelId: 'gqa-test', threads: 1, cacheDir, bootstrap: [] }
      const first = await peerThroughput(engine, node, sources, silent)
      assert.equal(first.cached, false)
      assert.ok(Number.isFinite(first.compute) && first.compute > 0)
      assert.equal(first.network, null, 'nobody to measure the network against')
      assert.equal(first.announced, first.compute)
      const second = await peerThroughput(engine, node, { ...sources, networkMbps: 1 }, silent)
      assert.equal(second.cached, true)
      assert.equal(second.compute, first.compute)
      // 1 Mbit/s = 125 000 B/s; a token is one hidden state of 64 f32 values each way
      assert.equal(second.network, 125_000 / (64 * 4))
      assert.equal(second.announced, Math.min(second.compute, second.network!))
    } finally {
      await engine.dispose()
      await node.stop()
    }
  })
})
