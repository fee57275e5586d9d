// Issue: peer daemon + chained inference. Real peer processes on 127.0.0.1.
import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { e2eShape, localTokens } from '../helpers/local.ts'
import { createSwarmNode, type SwarmNode } from '../../src/routing/index.ts'
import type { Stream } from '@libp2p/interface'
import { MessageChannel } from '../../src/protocol/channel.ts'
import { INFERENCE_PROTOCOL } from '../../src/protocol/messages.ts'
import * as lp from 'it-length-prefixed'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { startSwarm, stopPeers, type TestSwarm } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'
import { LocalModel, Swarm, type DoneOutput, type GenerationEvent } from '../../src/index.ts'
import { TextTokenizer } from '../../src/shards/tokenizer.ts'

export { e2eShape, localTokens }

async function swarmTokens (dir: string, bootstrap: string, prompt: number[], n: number): Promise<{ tokens: number[], routes: any[] }> {
  const r = await runCli(['generate', '--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(n), '--ignore-eos', '--json', '--bootstrap', bootstrap])
  assert.equal(r.code, 0, r.stderr)
  const events = jsonLines(r.stdout)
  const done = events[events.length - 1]
  assert.equal(done.event, 'done')
  return { tokens: done.tokens, routes: events.filter((e) => e.event === 'token').map((e) => e.route) }
}

describe('swarm generation equals local generation (real peer processes)', function () {
  this.timeout(120_000)
  const dir = tinyModel('e2e', e2eShape)
  const prompt = [1, 20, 30, 40, 50]
  let expected: number[]
  let swarm: TestSwarm | null = null
  before(async function () { expected = await localTokens(dir, prompt, 16) })
  afterEach(async function () { if (swarm !== null) await stopPeers(swarm.peers); swarm = null })

  const layouts: Array<[string, Array<[number, number]>]> = [
    ['two peers [0,2) [2,4)', [[0, 2], [2, 4]]],
    ['three peers [0,1) [1,3) [3,4)', [[0, 1], [1, 3], [3, 4]]],
    ['overlapping spans [0,3) [2,4)', [[0, 3], [2, 4]]],
    ['one peer hosting all blocks', [[0, 4]]]
  ]
  for (const [name, spans] of layouts) {
    it(name, async function () {
      swarm = await startSwarm(dir, spans)
      const { tokens, routes } = await swarmTokens(dir, swarm.bootstrap, prompt, 16)
      assert.deepEqual(tokens, expected)
      const route = routes[0] as Array<{ peer: string, start: number, end: number }>
      assert.equal(route[0].start, 0)
      assert.equal(route[route.length - 1].end, 4)
      for (let i = 1; i < route.length; i++) assert.equal(route[i].start, route[i - 1].end)
      for (const hop of route) assert.ok(swarm.peers.some((p) => p.peerId === hop.peer), 'every hop is one of our peers')
    })
  }

  it('the SDK: swarm.generate({ messages }) runs the conversation through the chat template, as LocalModel does', async function () {
    swarm = await startSwarm(dir, [[0, 4]])
    const messages = [
      { role: 'system', content: 'You answer in one word.' },
      { role: 'user', content: 'Hello there' },
      { role: 'assistant', content: 'Hi!' },
      { role: 'user', content: 'How are you?' }
    ]
    const done = async (events: AsyncIterable<GenerationEvent>): Promise<DoneOutput> => {
      for await (const e of events) if (e.event === 'done') return e
      throw new Error('no done event')
    }
    const local = await LocalModel.load(dir)
    const expected = await done(local.generate({ messages }, { maxNewTokens: 6, ignoreEos: true })).finally(async () => { await local.close() })
    const sdk = await Swarm.connect({ bootstrap: [swarm.bootstrap], modelDir: dir })
    const got = await done(sdk.generate({ messages }, { maxNewTokens: 6, ignoreEos: true })).finally(async () => { await sdk.close() })
    assert.deepEqual([got.tokens, got.text, got.promptTokens], [expected.tokens, expected.text, expected.promptTokens])
    assert.equal(got.promptTokens, TextTokenizer.load(dir)!.encodeChat(messages).length)
  })

  it('two concurrent clients do not mix their caches', async function () {
    swarm = await startSwarm(dir, [[0, 2], [2, 4]])
    const other = [1, 99, 98, 97]
    const otherExpected = await localTokens(dir, other, 16)
    const [a, b, c] = await Promise.all([
      swarmTokens(dir, swarm.bootstrap, prompt, 16),
      swarmTokens(dir, swarm.bootstrap, other, 16),
      swarmTokens(dir, swarm.bootstrap, prompt, 16)
    ])
    assert.deepEqual(a.tokens, expected)
    assert.deepEqual(b.tokens, otherExpected)
    assert.deepEqual(c.tokens, expected)
    const peer = swarm.peers[1]
    await peer.waitFor((e) => e.event === 'session_closed' && peer.events.filter((x) => x.event === 'session_closed').length >= 3, 10_000)
  })

  it('a peer given malformed frames answers them, shuts their sender out, and keeps serving other sessions', async function () {
    swarm = await startSwarm(dir, [[0, 4]])
    const target = swarm.peers[0]
    const nodes: SwarmNode[] = []
    /** a fresh client node each time: a peer shuts out (by peer id) a node that broke the protocol */
    const dial = async (): Promise<{ node: SwarmNode, ch: MessageChannel, stream: Stream }> => {
      const node = await createSwarmNode({ dhtMode: 'client' })
      nodes.push(node)
      await node.peerStore.merge(peerIdFromString(target.peerId), { multiaddrs: target.multiaddrs.map((a) => multiaddr(a)) })
      const stream = await node.dialProtocol(peerIdFromString(target.peerId), INFERENCE_PROTOCOL)
      return { node, ch: new MessageChannel(stream), stream }
    }
    try {
      const garbage: Uint8Array[] = [
        new Uint8Array([9, 9, 9]), // unknown version
        new Uint8Array([1, 77, 0, 0, 0, 0]), // unknown kind
        new Uint8Array([1, 1, 200, 0, 0, 0, 123]), // header length beyond the frame
        new TextEncoder().encode('not a frame at all')
      ]
      for (const bytes of garbage) {
        const { ch, stream } = await dial()
        stream.send(lp.encode.single(bytes))
        const reply = await ch.receive(AbortSignal.timeout(5000))
        assert.equal(reply.kind, 'error')
        assert.equal((reply as { code: string }).code, 'bad_request')
      }
      // a length prefix announcing a 512 MiB frame is refused before anything is buffered
      {
        const { node, ch, stream } = await dial()
        stream.send(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x02]))
        const reply = await ch.receive(AbortSignal.timeout(5000))
        assert.equal(reply.kind, 'error')
        assert.match((reply as { message: string }).message, /limit/)
        // its sender is disconnected and cannot come back for a while
        await target.waitFor((e) => e.event === 'remote_banned' && e.peer === node.peerId.toString(), 5000)
        // (a stream on the connection still open is reset unread; a new connection is refused)
        await assert.rejects((async () => {
          const again = new MessageChannel(await node.dialProtocol(peerIdFromString(target.peerId), INFERENCE_PROTOCOL, { signal: AbortSignal.timeout(5000) }))
          await again.send({ kind: 'open', sessionId: 'again', modelId: 'nope', start: 0, end: 4, maxLength: 8, wireDtype: 'f32' })
          return await again.receive(AbortSignal.timeout(5000))
        })(), (err: Error) => err.name !== 'TimeoutError')
      }
      // an open session with a wrong model is refused, and its sender is not shut out
      const { ch } = await dial()
      await ch.send({ kind: 'open', sessionId: 's', modelId: 'nope', start: 0, end: 4, maxLength: 8, wireDtype: 'f32' })
      const reply = await ch.receive(AbortSignal.timeout(5000))
      assert.deepEqual([reply.kind, (reply as { code: string }).code], ['error', 'wrong_model'])
      assert.equal(target.events.filter((e) => e.event === 'remote_banned').length, 5)
    } finally {
      await Promise.all(nodes.map(async (n) => await n.stop()))
    }
    const { tokens } = await swarmTokens(dir, swarm.bootstrap, prompt, 16)
    assert.deepEqual(tokens, expected)
    assert.ok(swarm.peers[0].running)
  })
})
