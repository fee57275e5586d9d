// Issue #10 item 2: server-to-server push. Real peer processes on 127.0.0.1: with --push each
// peer sends its output straight to the next and the tokens equal local (and relayed) decoding;
// pushes that the session's own client did not designate are refused without harm.
import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { e2eShape, localTokens } from '../helpers/local.ts'
import { createSwarmNode, type SwarmNode } from '../../src/routing/index.ts'
import { MessageChannel, ChannelClosedError } from '../../src/protocol/channel.ts'
import { INFERENCE_PROTOCOL, PUSH_PROTOCOL, type Message, type PushMessage } from '../../src/protocol/messages.ts'
import { modelIdFor } from '../../src/shards/config.ts'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { startSwarm, stopPeers, type PeerProcess, type TestSwarm } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'

describe('server-to-server push (real peer processes)', function () {
  this.timeout(120_000)
  const dir = tinyModel('e2e', e2eShape)
  const prompt = [1, 20, 30, 40, 50]
  let expected: number[]
  let swarm: TestSwarm | null = null
  before(async function () { expected = await localTokens(dir, prompt, 16) })
  afterEach(async function () { if (swarm !== null) await stopPeers(swarm.peers); swarm = null })

  async function generate (args: string[]): Promise<Array<Record<string, any>>> {
    const r = await runCli(['generate', '--model', dir, '--ignore-eos', '--json', ...args])
    assert.equal(r.code, 0, r.stderr)
    return jsonLines(r.stdout)
  }

  /** the session_closed event of `peer` that carries push counts */
  async function pushCounts (peer: PeerProcess): Promise<{ pushedOut: number, pushedIn: number, steps: number }> {
    const e = await peer.waitFor((x) => x.event === 'session_closed' && x.pushedOut !== undefined, 10_000)
    return { pushedOut: e.pushedOut, pushedIn: e.pushedIn, steps: e.steps }
  }

  it('three peers: the same tokens as local decoding, every step pushed peer to peer', async function () {
    swarm = await startSwarm(dir, [[0, 1], [1, 3], [3, 4]])
    const events = await generate(['--push', '--prompt-ids', prompt.join(','), '--max-new-tokens', '16', '--bootstrap', swarm.bootstrap])
    const done = events[events.length - 1]
    assert.deepEqual(done.tokens, expected)
    assert.equal(done.reroutes, 0)
    assert.equal(events[0].route.length, 3)
    const [first, middle, last] = await Promise.all(swarm.peers.map(pushCounts))
    // 16 tokens: one prefill step, then one step per token but the last
    assert.deepEqual(first, { pushedOut: 16, pushedIn: 0, steps: 16 })
    assert.deepEqual(middle, { pushedOut: 16, pushedIn: 16, steps: 16 })
    assert.deepEqual(last, { pushedOut: 0, pushedIn: 16, steps: 16 })
  })

  it('two peers with speculative decoding (truncations in push mode): the same tokens', async function () {
    const repetitive = [1, 7, 8, 9, 7, 8, 9, 7, 8]
    const plain = await localTokens(dir, repetitive, 24)
    swarm = await startSwarm(dir, [[0, 2], [2, 4]])
    const events = await generate(['--push', '--speculate', '3', '--prompt-ids', repetitive.join(','), '--max-new-tokens', '24', '--bootstrap', swarm.bootstrap])
    const done = events[events.length - 1]
    assert.deepEqual(done.tokens, plain)
    assert.ok(done.speculation.proposed > 0, JSON.stringify(done.speculation))
  })

  it('refuses --push with --verify or --audit-rate, naming the flag', async function () {
    for (const flag of [['--verify'], ['--audit-rate', '0.5']]) {
      const r = await runCli(['generate', '--model', dir, '--prompt-ids', '1,2', '--push', ...flag, '--bootstrap', '/ip4/127.0.0.1/tcp/9'])
      assert.notEqual(r.code, 0)
      assert.match(r.stderr, new RegExp(`--push cannot be combined with ${flag[0]}`))
    }
  })

  it('pushes the session\'s client did not designate are refused and their streams closed; the session carries on', async function () {
    swarm = await startSwarm(dir, [[0, 4]])
    const target = swarm.peers[0]
    const nodes: SwarmNode[] = []
    const node = async (): Promise<SwarmNode> => {
      const n = await createSwarmNode({ dhtMode: 'client' })
      nodes.push(n)
      await n.peerStore.merge(peerIdFromString(target.peerId), { multiaddrs: target.multiaddrs.map((a) => multiaddr(a)) })
      return n
    }
    const dial = async (from: SwarmNode, protocol: string): Promise<MessageChannel> =>
      new MessageChannel(await from.dialProtocol(peerIdFromString(target.peerId), protocol, { signal: AbortSignal.timeout(10_000) }))
    const H = e2eShape.hidden
    const input = Float32Array.from({ length: H }, (_, i) => Math.sin(i) / 4)
    const hidden = { dtype: 'f32' as const, shape: [1, 1, H] as [number, number, number], data: input }
    const modelId = modelIdFor(dir)
    const open = async (ch: MessageChannel, sessionId: string): Promise<void> => {
      await ch.send({ kind: 'open', sessionId, modelId, start: 0, end: 4, maxLength: 16, wireDtype: 'f32' })
      assert.equal((await ch.receive(AbortSignal.timeout(10_000))).kind, 'opened')
    }
    /** pushes `msg` on a fresh push stream: the error it gets, then the stream must end */
    const refused = async (from: SwarmNode, msg: PushMessage | Uint8Array, name: string): Promise<Message> => {
      const ch = await dial(from, PUSH_PROTOCOL)
      if (msg instanceof Uint8Array) ch.stream.send(lp.encode.single(msg))
      else await ch.send(msg)
      const reply = await ch.receive(AbortSignal.timeout(10_000))
      await assert.rejects(ch.receive(AbortSignal.timeout(10_000)), ChannelClosedError, `${name}: the stream is closed after the error`)
      return reply
    }
    try {
      const [client, designated, stranger] = await Promise.all([node(), node(), node()])
      const session = await dial(client, INFERENCE_PROTOCOL)
      await open(session, 'victim')
      const token = 'tok-' + 'a1b2c3d4'.repeat(4)
      await session.send({ kind: 'push_route', from: { peerId: designated.peerId.toString(), token } })
      assert.equal((await session.receive(AbortSignal.timeout(10_000))).kind, 'push_routed')

      const push: PushMessage = { kind: 'push', sessionId: 'victim', token, stepId: 7, position: 0, hidden }
      const expectRefusal = async (cases: Array<[string, SwarmNode, PushMessage | Uint8Array, string]>): Promise<void> => {
        for (const [name, from, msg, code] of cases) {
          const reply = await refused(from, msg, name)
          assert.equal(reply.kind, 'error', name)
          assert.equal((reply as { code: string }).code, code, `${name}: ${JSON.stringify(reply)}`)
        }
      }
      await expectRefusal([
        ['a peer no session named, with a wrong token', stranger, { ...push, token: 'tok-' + 'x'.repeat(28) }, 'forbidden'],
        ['a peer no session named, with the right token', stranger, push, 'forbidden'],
        ['the named peer, for another session', designated, { ...push, sessionId: 'nobody' }, 'forbidden'],
        ['the named peer, with a wrong token', designated, { ...push, token: 'tok-' + 'y'.repeat(28) }, 'forbidden'],
        ['the named peer, with a message other than push', designated, new Uint8Array([1, 7, 2, 0, 0, 0, 123, 125]), 'bad_request']
      ])

      // the designated peer's push runs in the victim's session: its client gets the result,
      // equal to the same input stepped by a client
      const pusher = await dial(designated, PUSH_PROTOCOL)
      await pusher.send(push)
      const pushed = await session.receive(AbortSignal.timeout(10_000))
      assert.equal(pushed.kind, 'result')
      const reference = await dial(client, INFERENCE_PROTOCOL)
      await open(reference, 'reference')
      await reference.send({ kind: 'step', stepId: 0, position: 0, hidden })
      const stepped = await reference.receive(AbortSignal.timeout(10_000))
      assert.ok(stepped.kind === 'result' && pushed.kind === 'result')
      assert.deepEqual([pushed.stepId, pushed.position], [7, 1])
      assert.deepEqual(pushed.hidden.data, stepped.hidden.data)

      // a malformed push frame, even from the named peer: an error, its stream closed, the sender shut out
      await expectRefusal([['a malformed frame from the named peer', designated, new Uint8Array([1, 13, 2, 0, 0, 0, 123, 125]), 'bad_request']])
      await target.waitFor((e) => e.event === 'remote_banned' && e.peer === designated.peerId.toString(), 10_000)
      // and the session goes on with client steps
      await session.send({ kind: 'step', stepId: 8, position: 1, hidden })
      const next = await session.receive(AbortSignal.timeout(10_000))
      assert.deepEqual([next.kind, (next as { position: number }).position], ['result', 2])
      assert.ok(target.running)
    } finally {
      await Promise.all(nodes.map(async (n) => await n.stop()))
    }
  })
})
