// Scheduling decisions of the step batcher, with a runner whose calls the test completes by hand
// (the real engine behind it is tested in batch.spec.ts and the e2e batch test).
import assert from 'node:assert/strict'
import { StepBatcher, type StepRunner } from '../../src/shards/worker/step-batcher.ts'
import type { BatchStep } from '../../src/shards/span-engine.ts'

const H = 4

/** Records every call; each call resolves when the test says so. */
class HandRunner implements StepRunner {
  readonly calls: Array<{ kind: 'batch' | 'single', sessions: string[], finish: () => void }> = []

  async batch (steps: BatchStep[]): Promise<Array<Float32Array | Error>> {
    const done = Promise.withResolvers<void>()
    this.calls.push({ kind: 'batch', sessions: steps.map((s) => s.sessionId), finish: done.resolve })
    await done.promise
    return steps.map((s) => s.position < 0 ? new Error(`bad ${s.sessionId}`) : Float32Array.from(s.hidden, (x) => x + 1))
  }

  async single (step: BatchStep): Promise<Float32Array> {
    const done = Promise.withResolvers<void>()
    this.calls.push({ kind: 'single', sessions: [step.sessionId], finish: done.resolve })
    await done.promise
    return Float32Array.from(step.hidden, (x) => x + 1)
  }

  get last (): { kind: string, sessions: string[], finish: () => void } { return this.calls[this.calls.length - 1] }
}

const row = (v: number): Float32Array => new Float32Array(H).fill(v)
const step = (sessionId: string, v = 0, positions = 1, position = 0): BatchStep => ({ sessionId, hidden: new Float32Array(H * positions).fill(v), position })
const tick = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
/** waits (at most 2 s) until the runner has had `n` calls */
async function calls (runner: HandRunner, n: number): Promise<void> {
  for (const t0 = performance.now(); runner.calls.length < n; await sleep(1)) if (performance.now() - t0 > 2000) throw new Error(`${runner.calls.length} calls, expected ${n}`)
}

/** a's step (in `next`) holds for b and c, which come back now: the three run as one batch */
async function bAndCJoin (b: StepBatcher, runner: HandRunner, next: Array<Promise<Float32Array>>): Promise<void> {
  next.push(b.step(step('b', 0, 1, 1)))
  assert.equal(runner.calls.length, 2, 'still held for c')
  next.push(b.step(step('c', 0, 1, 1)))
  assert.deepEqual([runner.last.kind, runner.last.sessions.join()], ['batch', 'a,b,c'])
  runner.last.finish()
  await Promise.all(next)
}

describe('step batcher', function () {
  it('a lone session never waits: each of its steps reaches the engine in the same tick', async function () {
    const runner = new HandRunner()
    const b = new StepBatcher(runner, H)
    const sizes: number[] = []
    b.onBatch = (n) => { sizes.push(n) }
    for (let i = 0; i < 3; i++) {
      const out = b.step(step('a', i, 1, i))
      assert.equal(runner.calls.length, i + 1, 'dispatched synchronously, no timer')
      runner.last.finish()
      assert.deepEqual(await out, row(i + 1))
    }
    assert.deepEqual(runner.calls.map((c) => c.kind), ['single', 'single', 'single'])
    assert.deepEqual(sizes, [1, 1, 1])
  })

  it('steps arriving while the engine computes go as one batch; prefill steps alone after it; a bad row fails alone', async function () {
    const runner = new HandRunner()
    const b = new StepBatcher(runner, H)
    const first = b.step(step('a'))
    const waiting = [b.step(step('b', 2)), b.step(step('c', 0, 3)), b.step(step('d', 0, 1, -1)), b.step(step('e', 5))]
    assert.equal(runner.calls.length, 1)
    runner.last.finish()
    await first
    await calls(runner, 2)
    runner.calls[1].finish()
    await calls(runner, 3)
    runner.calls[2].finish()
    assert.deepEqual(runner.calls.slice(1).map((c) => [c.kind, c.sessions.join()]), [['batch', 'b,d,e'], ['single', 'c']])
    const [bOut, cOut, dOut, eOut] = await Promise.allSettled(waiting)
    assert.deepEqual((bOut as PromiseFulfilledResult<Float32Array>).value, row(3))
    assert.equal((cOut as PromiseFulfilledResult<Float32Array>).value.length, 3 * H)
    assert.match(String((dOut as PromiseRejectedResult).reason), /bad d/)
    assert.deepEqual((eOut as PromiseFulfilledResult<Float32Array>).value, row(6))
  })

  it('a step holds for the other sessions of the last batch, and runs with them once they are all back', async function () {
    const runner = new HandRunner()
    const b = new StepBatcher(runner, H)
    const a0 = b.step(step('a'))
    const rest = [b.step(step('b')), b.step(step('c'))]
    runner.calls[0].finish()
    await a0
    await calls(runner, 2)
    assert.deepEqual(runner.calls[1].sessions, ['b', 'c'])
    // the batch takes ~40 ms: steps may hold ~20 ms for its sessions
    await sleep(40)
    runner.calls[1].finish()
    await Promise.all(rest)
    // b and c just ran: a's next step waits for them (the engine is idle meanwhile)
    const next = [b.step(step('a', 0, 1, 1))]
    await tick()
    assert.equal(runner.calls.length, 2, 'held')
    await bAndCJoin(b, runner, next)
  })

  it('steps that arrive in one burst meet one decision, even when the hold limit passes between two of them', async function () {
    const runner = new HandRunner()
    const b = new StepBatcher(runner, H)
    const z = b.step(step('z'))
    const abc = [b.step(step('a')), b.step(step('b')), b.step(step('c'))]
    runner.calls[0].finish()
    await z
    await calls(runner, 2)
    // the batch takes ~20 ms: the hold limit becomes ~10 ms
    await sleep(20)
    runner.calls[1].finish()
    await Promise.all(abc)
    const next = [b.step(step('a', 0, 1, 1))]
    assert.equal(runner.calls.length, 2, 'a holds for b and c')
    // the limit passes before b arrives, with no turn of the event loop in between
    for (const t0 = performance.now(); performance.now() - t0 < 30;);
    await bAndCJoin(b, runner, next)
  })

  it('the hold ends after half the last engine call; a session slower than that is not waited for', async function () {
    const runner = new HandRunner()
    const b = new StepBatcher(runner, H)
    const z = b.step(step('z'))
    const ab = [b.step(step('a')), b.step(step('b'))]
    runner.calls[0].finish()
    await z
    await calls(runner, 2)
    assert.deepEqual(runner.calls[1].sessions, ['a', 'b'])
    // the batch takes ~40 ms: the hold limit becomes ~20 ms
    await sleep(40)
    runner.calls[1].finish()
    await Promise.all(ab)
    // a comes back at once, b does not: a holds for b, then goes alone
    const t0 = performance.now()
    const a1 = b.step(step('a', 0, 1, 1))
    while (runner.calls.length === 2) await sleep(2)
    const held = performance.now() - t0
    assert.ok(held >= 5 && held < 500, `a held ${held.toFixed(1)} ms for b`)
    assert.deepEqual(runner.last.sessions, ['a'])
    runner.last.finish()
    await a1
    // b comes back ~60 ms after its result, longer than the hold limit
    await sleep(40)
    const b1 = b.step(step('b', 0, 1, 1))
    assert.equal(runner.calls.length, 4, 'the engine was idle: b goes at once')
    const a2 = b.step(step('a', 0, 1, 2))
    await sleep(40)
    runner.calls[3].finish()
    await b1
    await tick()
    // b just ran, but it is slow to come back: a, which waited for the engine, is not held for it
    assert.equal(runner.calls.length, 5, 'a not held for b')
    runner.last.finish()
    await a2
  })
})
