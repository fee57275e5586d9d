// The direct data path's channel over real loopback sockets: messages round trip sealed; a
// replayed, reordered, tampered or oversized frame closes the socket with a ProtocolError; the
// handshake proves the key both ways.
import assert from 'node:assert/strict'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { ChannelClosedError } from '../../src/protocol/channel.ts'
import { DirectChannel, ackFor, ackProves, helloFor, helloProves } from '../../src/protocol/direct.ts'
import { FrameTooLargeError, MalformedFrameError } from '../../src/protocol/errors.ts'
import type { Message } from '../../src/protocol/messages.ts'

/** a connected pair of loopback sockets */
async function socketPair (): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const peer = await accepted
  server.close()
  return [client, peer]
}

/** the raw bytes `DirectChannel` writes for `msgs` (captured from a socket pair) */
async function rawFrames (key: Buffer, msgs: Message[]): Promise<Buffer[]> {
  const [a, b] = await socketPair()
  const sender = new DirectChannel(a, key, 'client')
  const frames: Buffer[] = []
  let got = Buffer.alloc(0)
  const all = new Promise<void>((resolve) => {
    b.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk])
      while (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) {
        const n = 4 + got.readUInt32BE(0)
        frames.push(got.subarray(0, n))
        got = got.subarray(n)
      }
      if (frames.length === msgs.length) resolve()
    })
  })
  for (const m of msgs) await sender.send(m)
  await all
  a.destroy()
  b.destroy()
  return frames
}

const step = (stepId: number): Message => ({ kind: 'step', stepId, position: stepId, hidden: { dtype: 'f32', shape: [1, 1, 8], data: Float32Array.from({ length: 8 }, (_, i) => i + stepId) } })

describe('protocol/direct: sealed channel over a socket', function () {
  const key = randomBytes(32)
  const sockets: net.Socket[] = []
  afterEach(() => { for (const s of sockets.splice(0)) s.destroy() })

  async function pair (): Promise<[DirectChannel, DirectChannel]> {
    const [a, b] = await socketPair()
    sockets.push(a, b)
    return [new DirectChannel(a, key, 'client'), new DirectChannel(b, key, 'peer')]
  }

  /** a peer-side channel fed `bytes` by a raw client socket */
  async function peerFed (bytes: Buffer, limits = {}): Promise<DirectChannel> {
    const [a, b] = await socketPair()
    sockets.push(a, b)
    const ch = new DirectChannel(b, key, 'peer', limits)
    a.write(bytes)
    return ch
  }

  it('carries messages both ways, in order', async () => {
    const [client, peer] = await pair()
    for (let i = 0; i < 3; i++) await client.send(step(i))
    for (let i = 0; i < 3; i++) assert.deepEqual(await peer.receive(AbortSignal.timeout(5000)), step(i))
    await peer.send({ kind: 'truncated', length: 2 })
    assert.deepEqual(await client.receive(AbortSignal.timeout(5000)), { kind: 'truncated', length: 2 })
  })

  it('reads frames however the bytes are cut: split headers, several frames per chunk, a large frame in many pieces', async () => {
    const big: Message = { kind: 'step', stepId: 9, position: 0, hidden: { dtype: 'f32', shape: [1, 64, 2048], data: Float32Array.from({ length: 64 * 2048 }, (_, i) => i % 1000) } }
    const msgs = [step(0), step(1), big, step(2)]
    const bytes = Buffer.concat(await rawFrames(key, msgs))
    const [a, b] = await socketPair()
    sockets.push(a, b)
    const ch = new DirectChannel(b, key, 'peer')
    // pieces of 1, 2, 3 … bytes at first (headers split everywhere), then 4 KiB
    const pieces: Buffer[] = []
    for (let at = 0, n = 1; at < bytes.length; at += n, n = n < 40 ? n + 1 : 4096) pieces.push(bytes.subarray(at, at + n))
    // handed to the channel as the socket's own 'data' events, so that TCP cannot merge them
    for (const p of pieces) b.emit('data', p)
    for (const m of msgs) assert.deepEqual(await ch.receive(AbortSignal.timeout(5000)), m)
  })

  it('refuses a replayed frame, a reordered one and a tampered one', async () => {
    const frames = await rawFrames(key, [step(0), step(1)])
    const tampered = Buffer.from(frames[0])
    tampered[10] ^= 1
    for (const [name, bytes] of [['replay', Buffer.concat([frames[0], frames[0]])], ['reorder', Buffer.concat([frames[1], frames[0]])], ['tamper', tampered]] as const) {
      const ch = await peerFed(bytes)
      if (name === 'replay') assert.deepEqual(await ch.receive(AbortSignal.timeout(5000)), step(0))
      await assert.rejects(ch.receive(AbortSignal.timeout(5000)), MalformedFrameError, name)
      assert.ok(ch.socket.destroyed, `${name}: the socket is closed`)
    }
  })

  it('refuses frames sealed with another key or for the other direction', async () => {
    const [other] = await rawFrames(randomBytes(32), [step(0)])
    await assert.rejects((await peerFed(other)).receive(AbortSignal.timeout(5000)), MalformedFrameError)
    // a client's own frame reflected back to it does not authenticate as the peer's
    const [mine] = await rawFrames(key, [step(0)])
    const [a, b] = await socketPair()
    sockets.push(a, b)
    const client = new DirectChannel(a, key, 'client')
    b.write(mine)
    await assert.rejects(client.receive(AbortSignal.timeout(5000)), MalformedFrameError)
  })

  it('refuses a frame over the receiver\'s limit from its length alone', async () => {
    const prefix = Buffer.alloc(4)
    prefix.writeUInt32BE(1_000_016 + 1)
    const ch = await peerFed(prefix, { maxFrameBytes: 1_000_000 })
    await assert.rejects(ch.receive(AbortSignal.timeout(5000)), FrameTooLargeError)
    assert.ok(ch.socket.destroyed)
  })

  it('ends with ChannelClosedError when the remote closes', async () => {
    const [client, peer] = await pair()
    client.abort('bye')
    await assert.rejects(peer.receive(AbortSignal.timeout(5000)), ChannelClosedError)
  })

  it('handshake: the hello and the answer prove the key, nothing else does', () => {
    const token = randomBytes(16)
    assert.ok(helloProves(helloFor(token, key), key))
    assert.ok(!helloProves(helloFor(token, randomBytes(32)), key))
    assert.ok(ackProves(ackFor(key), key))
    assert.ok(!ackProves(ackFor(randomBytes(32)), key))
    // the answer is not the hello's proof played back
    assert.ok(!ackProves(helloFor(token, key).subarray(16), key))
  })
})
