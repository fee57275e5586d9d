// The client side of a span session, against a real libp2p node that refuses it.
import assert from 'node:assert/strict'
import { MessageChannel } from '../../src/protocol/channel.ts'
import { INFERENCE_PROTOCOL, type ErrorCode } from '../../src/protocol/messages.ts'
import { RemoteSpanSession, PeerFailure } from '../../src/routing/remote-span.ts'
import { NodePool, addrOf } from './helpers.ts'

describe('routing/remote-span: refusals', function () {
  const pool = new NodePool()
  after(async function () { await pool.stopAll() })

  async function refusedWith (code: ErrorCode, message: string): Promise<PeerFailure> {
    const server = await pool.create()
    await server.handle(INFERENCE_PROTOCOL, async (stream) => {
      const ch = new MessageChannel(stream)
      await ch.receive(AbortSignal.timeout(5000))
      await ch.send({ kind: 'error', code, message })
      await ch.close()
    })
    const client = await pool.create()
    const err = await RemoteSpanSession.open(client, { peerId: server.peerId.toString(), multiaddrs: [addrOf(server)], start: 0, end: 4 }, {
      modelId: 'm', sessionId: 's', maxLength: 16, wireDtype: 'f32', hiddenSize: 8, openTimeoutMs: 5000
    }).then(() => null, (e: unknown) => e)
    assert.ok(err instanceof PeerFailure, String(err))
    return err
  }

  it('names the reason once: "busy: <why>", "refused: <code>: <why>"', async function () {
    const busy = await refusedWith('busy', 'all 16 session slots are in use')
    assert.equal(busy.reason, 'busy')
    assert.match(busy.message, /^peer \w{8}: busy: all 16 session slots are in use$/)
    const wrong = await refusedWith('wrong_model', 'this peer serves model a, not b')
    assert.equal(wrong.reason, 'refused')
    assert.match(wrong.message, /^peer \w{8}: refused: wrong_model: this peer serves model a, not b$/)
  })
})
