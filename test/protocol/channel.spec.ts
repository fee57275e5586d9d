// The message channel over a real libp2p stream: bad length prefixes fail at once as protocol
// errors (so the peer answers and closes the stream), never as a silently dead stream.
import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { MessageChannel } from '../../src/protocol/channel.ts'
import { FrameTooLargeError, MalformedFrameError } from '../../src/protocol/errors.ts'
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
