// Deadlines in the routing layer: they fire, follow their parent signal, end with their
// operation, and survive garbage collection (on Node 20, AbortSignal.any over
// AbortSignal.timeout loses the timeout once collected, and the deadline never fires).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { withTimeout, delay } from '../../src/routing/abort.ts'

const ABORT_TS = new URL('../../src/routing/abort.ts', import.meta.url).href

/** Resolves with the signal's reason once it aborts. */
async function aborted (signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return signal.reason
  return await new Promise((resolve) => signal.addEventListener('abort', () => { resolve(signal.reason) }, { once: true }))
}

describe('withTimeout deadlines', function () {
  it('abort with a TimeoutError after the deadline', async function () {
    const started = performance.now()
    const reason = await withTimeout(50, undefined, aborted)
    assert.equal((reason as Error).name, 'TimeoutError')
    assert.ok(performance.now() - started >= 45)
  })

  it('abort with the parent\'s reason, also when the parent is already aborted', async function () {
    const parent = new AbortController()
    const pending = withTimeout(10_000, parent.signal, aborted)
    parent.abort(new Error('stop'))
    assert.equal(((await pending) as Error).message, 'stop')
    assert.equal(((await withTimeout(10_000, parent.signal, aborted)) as Error).message, 'stop')
  })

  it('end with the operation: no later abort, no listener left on the parent', async function () {
    const parent = new AbortController()
    let listeners = 0
    const add = parent.signal.addEventListener.bind(parent.signal)
    const remove = parent.signal.removeEventListener.bind(parent.signal)
    parent.signal.addEventListener = (...a: Parameters<typeof add>) => { listeners++; add(...a) }
    parent.signal.removeEventListener = (...a: Parameters<typeof remove>) => { listeners--; remove(...a) }
    const signal = await withTimeout(30, parent.signal, async (s) => s)
    assert.equal(listeners, 0)
    await delay(60)
    assert.equal(signal.aborted, false)
  })

  it('fire even when the garbage collector runs while waiting (node --expose-gc)', async function () {
    this.timeout(30_000)
    // a separate process: the test needs gc(), and must not depend on this process's heap
    const script = `
      import { withTimeout } from ${JSON.stringify(ABORT_TS)}
      const parent = new AbortController()
      const gc = setInterval(() => globalThis.gc(), 10)
      const started = performance.now()
      const reason = await Promise.race([
        withTimeout(200, parent.signal, (signal) => new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason.name)))),
        new Promise((resolve) => setTimeout(() => resolve('never fired'), 3000))
      ])
      clearInterval(gc)
      process.stdout.write(JSON.stringify({ reason, ms: performance.now() - started }))
      process.exit(0)
    `
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '--eval', script], { stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
      child.on('error', reject)
      child.on('close', (code) => { code === 0 ? resolve(stdout) : reject(new Error(`exit ${code}: ${stderr}`)) })
    })
    const { reason, ms } = JSON.parse(out)
    assert.equal(reason, 'TimeoutError')
    assert.ok(ms < 1000, `fired after ${ms} ms`)
  })
})

describe('delay', function () {
  it('waits, and rejects with the signal\'s reason as soon as it aborts', async function () {
    const started = performance.now()
    await delay(30)
    assert.ok(performance.now() - started >= 25)
    const c = new AbortController()
    const pending = delay(10_000, c.signal)
    c.abort(new Error('cancelled'))
    await assert.rejects(pending, /cancelled/)
  })
})
