import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import {
  fetchInfo, serveInfo, INFO_PROTOCOL, MAX_INFO_FRAME_BYTES, InfoFrameTooLargeError, InfoMissingError
} from '../../src/routing/info.ts'
import { verifyRecord } from '../../src/routing/records.ts'
import type { SwarmNode } from '../../src/routing/node.ts'
import { NodePool, addrOf, newIdentity, recordSigner, type TestIdentity } from './helpers.ts'

describe('routing/info protocol (real libp2p nodes on 127.0.0.1)', function () {
  this.timeout(10_000)
  const pool = new NodePool()
  let server: SwarmNode
  let client: SwarmNode
  let id: TestIdentity

  beforeEach(async () => {
    id = await newIdentity()
    server = await pool.create({ privateKey: id.key })
    client = await pool.create()
  })

  afterEach(async () => {
    await pool.stopAll()
  })

  /** Makes `server` answer info requests with exactly `bytes`, then close. */
  async function serveRaw (bytes: Uint8Array | undefined): Promise<void> {
    await server.handle(INFO_PROTOCOL, async (stream) => {
      if (bytes != null) {
        stream.send(bytes)
        await stream.close()
      }
    })
  }

  it('returns the current signed record, by multiaddr and then by peer id', async () => {
    await serveInfo(server, recordSigner(id, () => ({ start: 2, end: 6 })))
    const first = verifyRecord(await fetchInfo(client, multiaddr(addrOf(server))), { expectedPeerId: id.peerId })
    assert.deepEqual([first.start, first.end, first.seq], [2, 6, 1])
    const second = verifyRecord(await fetchInfo(client, server.peerId), { expectedPeerId: id.peerId })
    assert.equal(second.seq, 2, 'the record is fetched fresh every time')
  })

  it('rejects an oversized frame, and an oversized length prefix without waiting for the data', async () => {
    await serveRaw(lp.encode.single(new Uint8Array(MAX_INFO_FRAME_BYTES + 1)).slice())
    await assert.rejects(fetchInfo(client, multiaddr(addrOf(server))), InfoFrameTooLargeError)
    await server.unhandle(INFO_PROTOCOL)
    // varint(2^30), then nothing: must fail at once, not at the timeout
    await serveRaw(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x04]))
    const started = Date.now()
    await assert.rejects(fetchInfo(client, server.peerId, { timeoutMs: 5_000 }), InfoFrameTooLargeError)
    assert.ok(Date.now() - started < 2_000)
  })

  it('rejects a stream that closes without a frame, or with half of one', async () => {
    await serveRaw(new Uint8Array(0))
    await assert.rejects(fetchInfo(client, multiaddr(addrOf(server))), InfoMissingError)
    await server.unhandle(INFO_PROTOCOL)
    await serveRaw(lp.encode.single(new Uint8Array(100)).slice().subarray(0, 50))
    await assert.rejects(fetchInfo(client, server.peerId), (err: Error) => err instanceof InfoMissingError && /mid-record/.test(err.message))
  })

  it('times out on a server that never answers', async () => {
    await serveRaw(undefined)
    const started = Date.now()
    await assert.rejects(fetchInfo(client, multiaddr(addrOf(server)), { timeoutMs: 300 }), (err: Error) => err.name === 'TimeoutError')
    assert.ok(Date.now() - started < 2_000)
  })

  it('honours the caller abort signal', async () => {
    await serveRaw(undefined)
    const controller = new AbortController()
    const pending = fetchInfo(client, multiaddr(addrOf(server)), { signal: controller.signal, timeoutMs: 5_000 })
    controller.abort(new Error('caller gave up'))
    await assert.rejects(pending, /caller gave up/)
  })

  it('survives garbage requests and keeps answering', async () => {
    await serveInfo(server, recordSigner(id, () => ({})))
    for (let i = 0; i < 5; i++) {
      const stream = await client.dialProtocol(multiaddr(addrOf(server)), INFO_PROTOCOL)
      stream.send(new Uint8Array(256 * 1024).fill(0xff))
      if (i % 2 === 0) {
        await stream.close()
      } else {
        stream.abort(new Error('client gave up'))
      }
    }
    const record = verifyRecord(await fetchInfo(client, server.peerId), { expectedPeerId: id.peerId })
    assert.equal(record.peerId, id.peerId)
    assert.equal(server.status, 'started')
  })

  it('does not send an oversized own record', async () => {
    await serveInfo(server, () => new Uint8Array(MAX_INFO_FRAME_BYTES + 1))
    await assert.rejects(fetchInfo(client, multiaddr(addrOf(server))))
  })
})
