// The client side of push mode: which hop a failed push step is blamed on, against real libp2p
// nodes scripted to answer as peers would; and the options push refuses.
import assert from 'node:assert/strict'
import { MessageChannel } from '../../src/protocol/channel.ts'
import { INFERENCE_PROTOCOL, type Message } from '../../src/protocol/messages.ts'
import { RemoteSpanSession, PeerFailure } from '../../src/routing/remote-span.ts'
import { culpritOf, pushStep, PushOptionsError } from '../../src/routing/push-chain.ts'
import { ChainSession } from '../../src/routing/chain-session.ts'
import { componentLogger } from '../../src/routing/logger.ts'
import type { SwarmNode } from '../../src/routing/node.ts'
import { NodePool, addrOf } from './helpers.ts'

describe('routing/push-chain: culpritOf', function () {
  const chain = ['A', 'B', 'C']
  const f = (peer: string, reason: 'timeout' | 'closed' | 'refused', code?: 'push_failed'): PeerFailure => new PeerFailure(peer, reason, 'x', code)

  it('the first non-timeout failure in hop order, before any timeout', function () {
    const err = culpritOf([f('A', 'timeout'), f('B', 'closed'), f('C', 'refused')], chain) as PeerFailure
    assert.deepEqual([err.peerId, err.reason], ['B', 'closed'])
  })

  it('with only timeouts, the first hop that did not answer', function () {
    const err = culpritOf([f('B', 'timeout'), f('C', 'timeout')], chain) as PeerFailure
    assert.deepEqual([err.peerId, err.reason], ['B', 'timeout'])
  })

  it('a push_failed from hop i blames hop i + 1', function () {
    const err = culpritOf([f('A', 'refused', 'push_failed'), f('C', 'timeout')], chain) as PeerFailure
    assert.deepEqual([err.peerId, err.reason], ['B', 'unreachable'])
    assert.match(err.message, /could not push/)
  })

  it('a user abort (no peer failure) is passed through', function () {
    const abort = new DOMException('stopped', 'AbortError')
    assert.equal(culpritOf([abort], chain), abort)
  })
})

describe('routing/push-chain: a push step over scripted peers (real libp2p nodes)', function () {
  this.timeout(20_000)
  const pool = new NodePool()
  after(async function () { await pool.stopAll() })
  const H = 4

  /**
   * A node that opens one session. A step from the client (which only the first hop gets) calls
   * `onStep`; `say` sends on the session's stream, as a push arriving from the previous hop would
   * make a real peer do.
   */
  async function hop (onStep: (step: Extract<Message, { kind: 'step' }>) => void = () => {}): Promise<{ node: SwarmNode, say: (msg: Message) => void }> {
    const node = await pool.create()
    const channel = Promise.withResolvers<MessageChannel>()
    await node.handle(INFERENCE_PROTOCOL, async (stream) => {
      const ch = new MessageChannel(stream)
      try {
        const open = await ch.receive(AbortSignal.timeout(10_000))
        if (open.kind !== 'open') return
        await ch.send({ kind: 'opened', sessionId: open.sessionId, start: open.start, end: open.end, maxLength: open.maxLength })
        channel.resolve(ch)
        for (;;) {
          const msg = await ch.receive(AbortSignal.timeout(10_000))
          if (msg.kind === 'step') onStep(msg)
        }
      } catch {
        ch.abort('done')
      }
    })
    return { node, say: (msg) => { void channel.promise.then(async (ch) => { await ch.send(msg) }) } }
  }

  async function sessions (nodes: SwarmNode[]): Promise<RemoteSpanSession[]> {
    const client = await pool.create()
    return await Promise.all(nodes.map(async (n, i) => await RemoteSpanSession.open(client, { peerId: n.peerId.toString(), multiaddrs: [addrOf(n)], start: i, end: i + 1 }, {
      modelId: 'm', sessionId: `s${i}`, maxLength: 16, wireDtype: 'f32', hiddenSize: H, openTimeoutMs: 5000
    })))
  }

  it('on a timeout, blames the first hop without an acknowledgement', async function () {
    // hop A pushes on; hops B and C never answer: B is the one that held the step up
    const b = await hop()
    const c = await hop()
    const a = await hop((s) => { a.say({ kind: 'pushed', stepId: s.stepId, position: s.position + 1 }) })
    const err = await pushStep(await sessions([a.node, b.node, c.node]), new Float32Array(H), 0, 1, 1500).then(() => null, (e: unknown) => e)
    assert.ok(err instanceof PeerFailure, String(err))
    assert.deepEqual([err.peerId, err.reason], [b.node.peerId.toString(), 'timeout'])
  })

  it('the last hop\'s result is the output; a push_failed from the first hop blames the second', async function () {
    const out = Float32Array.from([1, 2, 3, 4])
    const last = await hop()
    const first = await hop((s) => {
      first.say({ kind: 'pushed', stepId: s.stepId, position: s.position + 1 })
      last.say({ kind: 'result', stepId: s.stepId, position: s.position + 1, hidden: { dtype: 'f32', shape: [1, 1, H], data: out } })
    })
    assert.deepEqual(await pushStep(await sessions([first.node, last.node]), new Float32Array(H), 0, 1, 5000), out)

    const silent = await hop()
    const failing = await hop(() => { failing.say({ kind: 'error', code: 'push_failed', message: 'the push link broke' }) })
    const err = await pushStep(await sessions([failing.node, silent.node]), new Float32Array(H), 0, 1, 5000).then(() => null, (e: unknown) => e)
    assert.ok(err instanceof PeerFailure, String(err))
    assert.deepEqual([err.peerId, err.reason], [silent.node.peerId.toString(), 'unreachable'])
  })

  it('a chain session refuses push together with a verifier, naming both', async function () {
    const verifier = { check: async () => ({ verdict: 'ok' as const }), truncate: async () => {}, release: async () => {} }
    await assert.rejects(ChainSession.open(await pool.create(), { candidates: async () => [] }, {
      modelId: 'm', numBlocks: 2, hiddenSize: H, maxLength: 8, push: true, verifier, log: componentLogger('test')
    }), (err: Error) => err instanceof PushOptionsError && /push mode cannot be combined with verification or replica audits \(--verify, --audit-rate\)/.test(err.message))
  })
})
