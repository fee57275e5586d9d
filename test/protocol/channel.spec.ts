// The message channel over a real libp2p stream: bad length prefixes fail at once as protocol
// errors (so the peer answers and closes the stream), never as a silently dead stream.
import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { MessageChannel } from '../../src/protocol/channel.ts'
import { ChannelClosedError } from '../../src/protocol/channel.ts'
import { encodeMessage, type Message } from '../../src/protocol/messages.ts'
import { FrameTooLargeError, MalformedFrameError } from '../../src/protocol/errors.ts'
import * as lp from 'it-length-prefixed'
import { YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import type { SwarmNode } from '../../src/routing/node.ts'
import { NodePool, addrOf } from '../routing/helpers.ts'

const PROTOCOL = '/strata-test/channel/1.0.0'

describe('protocol/channel over a libp2p stream (real nodes on 127.0.0.1)', function () {
  this.timeout(10_000)
  const pool = new NodePool()
  let server: SwarmNode
  let client: SwarmNode
  let received: Promise<unknown>

  beforeEach(async () => {
    server = await pool.create()
    client = await pool.create()
    const { promise, resolve } = Promise.withResolvers<unknown>()
    received = promise
    await server.handle(PROTOCOL, async (stream) => {
      const channel = new MessageChannel(stream, { maxFrameBytes: 1024 })
      try {
        resolve(await channel.receive(AbortSignal.timeout(5_000)))
      } catch (err) {
        resolve(err)
      } finally {
        channel.abort('done')
      }
    })
  })

  afterEach(async () => { await pool.stopAll() })

  async function sendRaw (bytes: Uint8Array): Promise<unknown> {
    const stream = await client.dialProtocol(multiaddr(addrOf(server)), PROTOCOL)
    stream.send(bytes)
    const started = Date.now()
    const result = await received
    assert.ok(Date.now() - started < 2_000, 'at once, not at the timeout')
    return result
  }

  it('refuses a length prefix over the limit before the data arrives', async () => {
    // varint(2^30), then nothing
    const err = await sendRaw(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x04]))
    assert.ok(err instanceof FrameTooLargeError, String(err))
  })

  it('refuses a length prefix that is not a varint of at most 8 bytes', async () => {
    const err = await sendRaw(new Uint8Array(12).fill(0xff))
    assert.ok(err instanceof MalformedFrameError, String(err))
    assert.match((err as Error).message, /length prefix is not a valid varint/)
  })
})

/** One step message of `n` positions of width 64 (frame of ~n KiB), tagged by `stepId`. */
function step (stepId: number, n = 1): Message {
  return { kind: 'step', stepId, position: 0, hidden: { dtype: 'f32', shape: [1, n, 64], data: new Float32Array(n * 64).fill(stepId) } }
}

describe('protocol/channel: framing and flow over a libp2p stream (real nodes on 127.0.0.1)', function () {
  this.timeout(20_000)
  const pool = new NodePool()
  let server: SwarmNode
  let client: SwarmNode
  let serverChannel: Promise<MessageChannel>

  beforeEach(async () => {
    server = await pool.create()
    client = await pool.create()
    const { promise, resolve } = Promise.withResolvers<MessageChannel>()
    serverChannel = promise
    await server.handle(PROTOCOL, (stream) => { resolve(new MessageChannel(stream)) })
  })

  afterEach(async () => { await pool.stopAll() })

  async function dial (): Promise<MessageChannel> {
    return new MessageChannel(await client.dialProtocol(multiaddr(addrOf(server)), PROTOCOL))
  }

  it('delivers frames written together, in order, and frames split over many chunks whole', async () => {
    const out = await dial()
    // three frames in one write, then a 1 MiB frame (many yamux and noise chunks)
    out.stream.send(new Uint8Array(Buffer.concat([1, 2, 3].map((i) => lp.encode.single(encodeMessage(step(i))).subarray()))))
    await out.send(step(4, 4096))
    const ch = await serverChannel
    const got = []
    for (let i = 0; i < 4; i++) got.push(await ch.receive(AbortSignal.timeout(10_000)))
    assert.deepEqual(got.map((m) => m.kind === 'step' ? [m.stepId, m.hidden.data.length, m.hidden.data[0]] : null), [[1, 64, 1], [2, 64, 2], [3, 64, 3], [4, 4096 * 64, 4]])
  })

  it('a reader that falls behind holds the sender back and then gets every frame in order', async () => {
    const out = await dial()
    const ch = await serverChannel
    const n = 40
    // 40 frames of 64 KiB: far more than the reader takes before it starts reading
    const sending = (async () => { for (let i = 0; i < n; i++) await out.send(step(i, 256)) })()
    await new Promise<void>((resolve) => { ch.stream.addEventListener('message', () => { if (ch.stream.readStatus === 'paused') resolve() }) })
    for (let i = 0; i < n; i++) {
      const m = await ch.receive(AbortSignal.timeout(10_000))
      assert.ok(m.kind === 'step' && m.stepId === i && m.hidden.data[0] === i, `frame ${i} in order`)
    }
    await sending
  })

  it('a stream that ends inside a frame fails the reader with ChannelClosedError, after the frames before it', async () => {
    const out = await dial()
    const whole = lp.encode.single(encodeMessage(step(7))).subarray()
    out.stream.send(new Uint8Array(Buffer.concat([whole, whole.subarray(0, 100)])))
    await out.close()
    const ch = await serverChannel
    const first = await ch.receive(AbortSignal.timeout(5_000))
    assert.ok(first.kind === 'step' && first.stepId === 7)
    await assert.rejects(ch.receive(AbortSignal.timeout(5_000)), (err: Error) => err instanceof ChannelClosedError && /inside a frame/.test(err.message))
  })

  it('request/reply steps get yamux window updates only every half window, not one per frame', async () => {
    // counts the window updates the two ends of this stream receive (both are in this process)
    const proto = YamuxStream.prototype as unknown as { handleWindowUpdate: (frame: unknown) => void }
    const handle = proto.handleWindowUpdate
    const ends = new Set<unknown>()
    let updates = 0
    proto.handleWindowUpdate = function (this: unknown, frame: unknown) {
      if (ends.has(this)) updates++
      handle.call(this, frame)
    }
    try {
      const out = await dial()
      const ch = await serverChannel
      ends.add(out.stream).add(ch.stream)
      const n = 64
      for (let i = 0; i < n; i++) {
        await out.send(step(i, 32)) // 8 KiB, a 2048-wide hidden state
        const m = await ch.receive(AbortSignal.timeout(5_000))
        await ch.send(m)
        await out.receive(AbortSignal.timeout(5_000))
      }
      // 2 × 64 frames of 8 KiB moved: a 256 KiB window needs a handful of half-window updates;
      // one per frame would be 128
      assert.ok(ends.size === 2 && updates <= 10, `${updates} window updates for ${2 * n} data frames`)
    } finally {
      proto.handleWindowUpdate = handle
    }
  })
})

describe('protocol/channel: an aborted receive loses no frame', function () {
  this.timeout(10_000)
  const pool = new NodePool()
  afterEach(async () => { await pool.stopAll() })

  it('the frame that arrives after an aborted receive goes to the next receive', async () => {
    const server = await pool.create()
    const client = await pool.create()
    const got = Promise.withResolvers<unknown[]>()
    const firstAborted = Promise.withResolvers<void>()
    await server.handle(PROTOCOL, async (stream) => {
      const channel = new MessageChannel(stream)
      const seen: unknown[] = []
      const stop = new AbortController()
      const first = channel.receive(stop.signal).catch((err: Error) => err.message)
      stop.abort(new Error('aborted on purpose'))
      seen.push(await first)
      firstAborted.resolve()
      seen.push(await channel.receive(AbortSignal.timeout(5_000)))
      seen.push(await channel.receive(AbortSignal.timeout(5_000)))
      got.resolve(seen)
      channel.abort('done')
    })
    const channel = new MessageChannel(await client.dialProtocol(multiaddr(addrOf(server)), PROTOCOL))
    await firstAborted.promise
    await channel.send({ kind: 'truncate', length: 1 })
    await channel.send({ kind: 'truncate', length: 2 })
    assert.deepEqual(await got.promise, ['aborted on purpose', { kind: 'truncate', length: 1 }, { kind: 'truncate', length: 2 }])
  })
})
