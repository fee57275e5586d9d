// The peer's push inbox and token registry (pure state; the streams are tested end to end).
import assert from 'node:assert/strict'
import { PushInbox, PushRegistry, PUSH_INBOX_CAPACITY, PUSH_STREAM_SLACK } from '../../src/peer/push.ts'
import type { StepMessage } from '../../src/protocol/messages.ts'

const step = (stepId: number): StepMessage => ({ kind: 'step', stepId, position: stepId, hidden: { dtype: 'f32', shape: [1, 1, 1], data: new Float32Array(1) } })

describe('peer/push: inbox', function () {
  it('hands steps over in order, to a waiter or from the queue', async function () {
    const inbox = new PushInbox()
    const waiting = inbox.next(new AbortController().signal)
    assert.ok(inbox.deliver(step(1)))
    assert.equal((await waiting).stepId, 1)
    assert.ok(inbox.deliver(step(2)))
    assert.equal((await inbox.next(new AbortController().signal)).stepId, 2)
    assert.equal(inbox.delivered, 2)
  })

  it('refuses a step beyond its capacity', function () {
    const inbox = new PushInbox()
    for (let i = 0; i < PUSH_INBOX_CAPACITY; i++) assert.ok(inbox.deliver(step(i)))
    assert.equal(inbox.deliver(step(99)), false)
    assert.equal(inbox.delivered, PUSH_INBOX_CAPACITY)
  })

  it('an aborted wait loses no step: the next one arrives at the next wait', async function () {
    const inbox = new PushInbox()
    const stop = new AbortController()
    const waiting = inbox.next(stop.signal)
    stop.abort(new Error('the client spoke first'))
    await assert.rejects(waiting, /the client spoke first/)
    assert.ok(inbox.deliver(step(5)))
    assert.equal((await inbox.next(new AbortController().signal)).stepId, 5)
  })
})

describe('peer/push: registry', function () {
  it('a token belongs to one session at a time', function () {
    const registry = new PushRegistry()
    const acceptor = { sessionId: 's', from: 'peer-a', inbox: new PushInbox() }
    assert.ok(registry.accept('t'.repeat(16), acceptor))
    assert.equal(registry.accept('t'.repeat(16), { ...acceptor, sessionId: 'other' }), false)
    assert.equal(registry.find('t'.repeat(16)), acceptor)
    registry.drop('t'.repeat(16))
    assert.equal(registry.find('t'.repeat(16)), undefined)
    assert.equal(registry.size, 0)
  })

  it('push streams: none from a peer no session named; one per session that names it, plus the slack', function () {
    const registry = new PushRegistry()
    assert.equal(registry.openStream('peer-a'), false)
    registry.accept('a'.repeat(16), { sessionId: 's1', from: 'peer-a', inbox: new PushInbox() })
    registry.accept('b'.repeat(16), { sessionId: 's2', from: 'peer-a', inbox: new PushInbox() })
    for (let i = 0; i < 2 + PUSH_STREAM_SLACK; i++) assert.ok(registry.openStream('peer-a'), `stream ${i}`)
    assert.equal(registry.openStream('peer-a'), false)
    assert.equal(registry.openStream('peer-b'), false)
    registry.closeStream('peer-a')
    assert.ok(registry.openStream('peer-a'))
  })
})
