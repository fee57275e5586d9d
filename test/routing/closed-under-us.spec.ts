import assert from 'node:assert/strict'
import { ConnectionClosedError, StreamResetError, TimeoutError } from '@libp2p/interface'
import { closedUnderUs, retryIfClosedUnderUs } from '../../src/routing/closed-under-us.ts'

describe('retry when the connection closed under an exchange', function () {
  it('tells a connection that went away from a refusal or a timeout', function () {
    assert.equal(closedUnderUs(new ConnectionClosedError('The connection muxer is "closed" and not "open"')), true)
    assert.equal(closedUnderUs(new StreamResetError('The stream has been reset')), true)
    assert.equal(closedUnderUs(new TimeoutError('timed out')), false)
    assert.equal(closedUnderUs(new Error('refused')), false)
  })

  it('tries once more after a closed connection, never after another error or an abort', async function () {
    let calls = 0
    assert.equal(await retryIfClosedUnderUs(async () => { if (calls++ === 0) throw new ConnectionClosedError('closed'); return 'ok' }, new AbortController().signal), 'ok')
    assert.equal(calls, 2)
    calls = 0
    await assert.rejects(retryIfClosedUnderUs(async () => { calls++; throw new ConnectionClosedError('closed') }, new AbortController().signal), /closed/)
    assert.equal(calls, 2, 'once more, not forever')
    calls = 0
    await assert.rejects(retryIfClosedUnderUs(async () => { calls++; throw new Error('refused') }, new AbortController().signal), /refused/)
    assert.equal(calls, 1)
    calls = 0
    const aborted = AbortSignal.abort()
    await assert.rejects(retryIfClosedUnderUs(async () => { calls++; throw new ConnectionClosedError('closed') }, aborted), /closed/)
    assert.equal(calls, 1)
  })
})
