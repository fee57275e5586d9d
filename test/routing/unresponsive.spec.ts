// The memory of providers that did not answer a record probe in time.
import assert from 'node:assert/strict'
import { MAX_UNRESPONSIVE_MARKS, UnresponsivePeers, UNRESPONSIVE_SKIP_MS, unresponsivePeers } from '../../src/routing/unresponsive.ts'

describe('routing/unresponsive: providers skipped for a while after an unanswered probe', function () {
  it('a marked peer is skipped until the skip time has passed, then probed again', function () {
    const peers = new UnresponsivePeers()
    assert.equal(peers.skips('a', 0), false)
    peers.mark('a', 1000)
    assert.equal(peers.skips('a', 1000), true)
    assert.equal(peers.skips('b', 1000), false, 'only the marked peer')
    assert.equal(peers.skips('a', 1000 + UNRESPONSIVE_SKIP_MS - 1), true)
    assert.equal(peers.skips('a', 1000 + UNRESPONSIVE_SKIP_MS), false)
    assert.equal(peers.skips('a', 1000), false, 'forgotten once expired')
  })

  it('a background check that gets an answer clears the mark; one check at a time; a failed one keeps it', async function () {
    const peers = new UnresponsivePeers()
    peers.mark('a')
    const answer = Promise.withResolvers<boolean>()
    let checks = 0
    const probe = async (): Promise<boolean> => { checks++; return await answer.promise }
    peers.recheck('a', probe)
    peers.recheck('a', probe)
    assert.equal(checks, 1, 'a second check waits for the first to end')
    answer.resolve(false)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(peers.skips('a'), true, 'no answer: still skipped')
    peers.recheck('a', async () => { checks++; throw new Error('dial failed') })
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(peers.skips('a'), true, 'a check that throws keeps the mark')
    peers.recheck('a', async () => { checks++; return true })
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(checks, 3)
    assert.equal(peers.skips('a'), false, 'it answered: discovery waits for it again')
  })

  it('keeps at most MAX_UNRESPONSIVE_MARKS marks, forgetting the oldest first', function () {
    const peers = new UnresponsivePeers()
    for (let i = 0; i < MAX_UNRESPONSIVE_MARKS + 10; i++) peers.mark(`p${i}`, 0)
    assert.equal(peers.size, MAX_UNRESPONSIVE_MARKS)
    assert.equal(peers.skips('p0', 1), false, 'the oldest went')
    assert.equal(peers.skips(`p${MAX_UNRESPONSIVE_MARKS + 9}`, 1), true, 'the newest stays')
  })

  it('each node has its own memory', function () {
    const a = {}
    const b = {}
    unresponsivePeers(a).mark('x')
    assert.equal(unresponsivePeers(a).skips('x'), true)
    assert.equal(unresponsivePeers(b).skips('x'), false)
  })
})
