// Issue #10 item 1: the direct data path. Real peer processes on 127.0.0.1: sessions open over
// libp2p, then their steps move to a plain TCP socket sealed with AES-256-GCM. The tokens equal
// local decoding; a peer with --no-direct is used over its stream; strangers' sockets are refused
// without harm to the session they aim at; a killed peer is routed around with the same tokens.
import assert from 'node:assert/strict'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { e2eShape, localTokens } from '../helpers/local.ts'
import { createSwarmNode, type SwarmNode } from '../../src/routing/index.ts'
import { MessageChannel } from '../../src/protocol/channel.ts'
import { DirectChannel, helloFor } from '../../src/protocol/direct.ts'
import { DIRECT_PROTOCOL, INFERENCE_PROTOCOL, type Message } from '../../src/protocol/messages.ts'
import { modelIdFor } from '../../src/shards/config.ts'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { GenerateProcess, startSwarm, stopPeers, type PeerEventLine, type PeerProcess, type TestSwarm } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'

const readyOf = (p: PeerProcess): PeerEventLine => p.events.find((e) => e.event === 'ready')!

describe('direct data path (real peer processes)', function () {
  this.timeout(120_000)
  const dir = tinyModel('e2e', e2eShape)
  const prompt = [1, 20, 30, 40, 50]
  let expected: number[]
  let swarm: TestSwarm | null = null
  before(async function () { expected = await localTokens(dir, prompt, 16) })
  afterEach(async function () { if (swarm !== null) await stopPeers(swarm.peers); swarm = null })

  async function generate (args: string[]): Promise<Array<Record<string, any>>> {
    const r = await runCli(['generate', '--model', dir, '--ignore-eos', '--json', '--prompt-ids', prompt.join(','), '--max-new-tokens', '16', ...args])
    assert.equal(r.code, 0, r.stderr)
    return jsonLines(r.stdout)
  }

  it('two peers: the same tokens as local decoding, every hop over the direct path', async function () {
    swarm = await startSwarm(dir, [[0, 2], [2, 4]])
    for (const p of swarm.peers) assert.ok(Number.isInteger(readyOf(p).directPort), 'the ready line names the direct port')
    const events = await generate(['--bootstrap', swarm.bootstrap])
    const done = events[events.length - 1]
    assert.deepEqual(done.tokens, expected)
    for (const e of events.filter((x) => x.event === 'token')) {
      assert.deepEqual(e.route.map((h: any) => h.direct), [true, true], JSON.stringify(e.route))
    }
    // the peers agree: their sessions ran direct, and every step went that way
    for (const p of swarm.peers) {
      const closed = await p.waitFor((x) => x.event === 'session_closed', 10_000)
      assert.equal(closed.direct, true)
      assert.equal(closed.steps, 16)
    }
  })

  it('falls back to the stream for a peer with --no-direct, and with the client\'s --no-direct', async function () {
    swarm = await startSwarm(dir, [[0, 2], [2, 4]], [['--no-direct'], []])
    assert.equal(readyOf(swarm.peers[0]).directPort, undefined)
    const mixed = await generate(['--bootstrap', swarm.bootstrap])
    assert.deepEqual(mixed[mixed.length - 1].tokens, expected)
    assert.deepEqual(mixed[0].route.map((h: any) => h.direct), [false, true])
    const off = await generate(['--bootstrap', swarm.bootstrap, '--no-direct'])
    assert.deepEqual(off[off.length - 1].tokens, expected)
    assert.deepEqual(off[0].route.map((h: any) => h.direct), [false, false])
  })

  it('sockets with unknown tokens, wrong keys, a used token or oversized frames are closed; the session carries on', async function () {
    swarm = await startSwarm(dir, [[0, 4]])
    const target = swarm.peers[0]
    const port = readyOf(target).directPort as number
    const node: SwarmNode = await createSwarmNode({ dhtMode: 'client' })
    const sockets: net.Socket[] = []
    /** a raw socket to the direct port that writes `bytes`; resolves once the peer closed it */
    const closedAfter = async (bytes: Uint8Array): Promise<void> => {
      const s = net.connect(port, '127.0.0.1')
      sockets.push(s)
      s.on('error', () => {})
      s.write(bytes)
      await new Promise<void>((resolve) => s.once('close', () => { resolve() }))
    }
    try {
      const id = peerIdFromString(target.peerId)
      await node.peerStore.merge(id, { multiaddrs: target.multiaddrs.map((a) => multiaddr(a)) })
      const H = e2eShape.hidden
      const hidden = { dtype: 'f32' as const, shape: [1, 1, H] as [number, number, number], data: Float32Array.from({ length: H }, (_, i) => Math.cos(i) / 4) }
      const modelId = modelIdFor(dir)
      const open = async (sessionId: string): Promise<MessageChannel> => {
        const ch = new MessageChannel(await node.dialProtocol(id, INFERENCE_PROTOCOL, { signal: AbortSignal.timeout(10_000) }))
        await ch.send({ kind: 'open', sessionId, modelId, start: 0, end: 4, maxLength: 16, wireDtype: 'f32' })
        assert.equal((await ch.receive(AbortSignal.timeout(10_000))).kind, 'opened')
        return ch
      }
      const ask = async (sessionId: string, key: Buffer): Promise<Message> => {
        const ch = new MessageChannel(await node.dialProtocol(id, DIRECT_PROTOCOL, { signal: AbortSignal.timeout(10_000) }))
        await ch.send({ kind: 'direct_request', sessionId, key: key.toString('base64') })
        return await ch.receive(AbortSignal.timeout(10_000))
      }
      const stream = await open('victim')
      const key = randomBytes(32)
      assert.equal((await ask('nobody', key)).kind, 'error', 'no offer for a session the client does not hold')
      const offer = await ask('victim', key)
      assert.ok(offer.kind === 'direct_offer')
      assert.equal(offer.port, port)
      const token = Buffer.from(offer.token, 'base64')

      await closedAfter(helloFor(randomBytes(16), key)) // unknown token
      await closedAfter(helloFor(token, randomBytes(32))) // the right token, a wrong key
      await closedAfter(Buffer.concat([helloFor(token, key), Buffer.alloc(8)])) // bytes before the answer

      // the session still works over its stream, and its token is still good
      await stream.send({ kind: 'step', stepId: 0, position: 0, hidden })
      const first = await stream.receive(AbortSignal.timeout(10_000))
      assert.deepEqual([first.kind, (first as { position: number }).position], ['result', 1])

      const socket = net.connect(port, '127.0.0.1')
      sockets.push(socket)
      socket.write(helloFor(token, key))
      await new Promise<void>((resolve) => socket.once('data', () => { resolve() }))
      const direct = new DirectChannel(socket, key, 'client')
      await closedAfter(helloFor(token, key)) // a token admits one socket only
      await direct.send({ kind: 'step', stepId: 1, position: 1, hidden })
      const second = await direct.receive(AbortSignal.timeout(10_000))
      assert.deepEqual([second.kind, (second as { position: number }).position], ['result', 2])

      // a frame over the peer's limit closes the socket (and with it the session)
      const huge = Buffer.alloc(4)
      huge.writeUInt32BE(0x7fff_ffff)
      socket.write(huge)
      await new Promise<void>((resolve) => socket.once('close', () => { resolve() }))
      const ended = await target.waitFor((x) => x.event === 'session_closed', 10_000)
      assert.equal(ended.direct, true)
      assert.ok(target.running)

      // and other clients are served as before, directly
      const events = await generate(['--bootstrap', swarm.bootstrap])
      assert.deepEqual(events[events.length - 1].tokens, expected)
      assert.deepEqual(events[0].route.map((h: any) => h.direct), [true])
    } finally {
      for (const s of sockets) s.destroy()
      await node.stop()
    }
  })

  it('kill -9 of a peer serving a direct hop mid-generation: re-routed, the same tokens', async function () {
    const n = 120
    const long = await localTokens(dir, prompt, n)
    swarm = await startSwarm(dir, [[0, 2], [2, 4], [2, 4]])
    const gen = new GenerateProcess(['--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(n), '--ignore-eos', '--bootstrap', swarm.bootstrap])
    const e = await gen.waitFor((x) => x.event === 'token' && x.index === 5)
    const hop = (e.route as Array<{ peer: string, start: number, direct: boolean }>).find((h) => h.start === 2)!
    assert.equal(hop.direct, true)
    swarm.peers.find((p) => p.peerId === hop.peer)!.kill('SIGKILL')
    const done = await gen.waitFor((x) => x.event === 'done', 120_000)
    assert.equal(await gen.exited, 0, gen.errors)
    assert.deepEqual(done.tokens, long)
    assert.ok(done.reroutes >= 1)
    const last = gen.events.filter((x) => x.event === 'token').pop()!
    assert.deepEqual(last.route.map((h: any) => h.direct), [true, true], 'the replacement runs direct too')
  })
})
