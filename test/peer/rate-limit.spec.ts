import assert from 'node:assert/strict'
import { RequestLimiter, StreamCounter, TokenBuckets, defaultRequestLimits } from '../../src/peer/rate-limit.ts'

describe('per-remote-peer request limits', function () {
  it('a token bucket allows a burst, then the rate, and says how long to wait', function () {
    const b = new TokenBuckets(10, 20)
    for (let i = 0; i < 20; i++) assert.equal(b.take('p', 0), 0, `burst token ${i}`)
    assert.equal(b.take('p', 0), 100, 'one token a tenth of a second later')
    assert.equal(b.take('p', 50), 50)
    assert.equal(b.take('p', 100), 0)
    assert.ok(b.take('p', 100) > 0)
    // another key has its own bucket
    assert.equal(b.take('q', 100), 0)
    // refills never exceed the burst
    for (let i = 0; i < 20; i++) assert.equal(b.take('p', 100_000), 0)
    assert.ok(b.take('p', 100_000) > 0)
  })

  it('stays bounded however many keys a flood uses, without refilling a draining key early', function () {
    const b = new TokenBuckets(1, 1, 100)
    for (let i = 0; i < 10_000; i++) b.take(`sybil-${i}`, i)
    assert.ok(b.size <= 100, `${b.size} buckets`)
    // keys whose buckets refilled are forgotten first: a drained recent key keeps its debt
    const c = new TokenBuckets(1, 1, 3)
    c.take('old', 0)
    c.take('drained', 5_000)
    c.take('x', 5_000)
    assert.ok(c.take('drained', 5_000) > 0)
    c.take('y', 5_000) // 'old' refilled long ago and goes; 'drained' stays
    assert.ok(c.take('drained', 5_000) > 0)
  })

  it('refuses a bad configuration', function () {
    assert.throws(() => new TokenBuckets(0, 1), RangeError)
    assert.throws(() => new TokenBuckets(1, 0), RangeError)
  })

  it('counts open streams per remote and refuses beyond the cap', function () {
    const s = new StreamCounter(2)
    assert.ok(s.acquire('p'))
    assert.ok(s.acquire('p'))
    assert.equal(s.acquire('p'), false)
    assert.equal(s.held('p'), 2)
    assert.ok(s.acquire('q'))
    s.release('p')
    assert.ok(s.acquire('p'))
    s.release('p')
    s.release('p')
    assert.equal(s.held('p'), 0)
  })

  it('defaults leave room beyond the session share; bursts are twice the rate', function () {
    assert.deepEqual(defaultRequestLimits(4), { streamsPerPeer: 8, opensPerPeerPerSecond: 20, messagesPerPeerPerSecond: 1000 })
    const l = new RequestLimiter({ streamsPerPeer: 1, opensPerPeerPerSecond: 2, messagesPerPeerPerSecond: 5 })
    for (let i = 0; i < 4; i++) assert.equal(l.opens.take('p', 0), 0)
    assert.ok(l.opens.take('p', 0) > 0)
    assert.equal(l.messages.burst, 10)
  })
})
