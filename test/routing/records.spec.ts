import assert from 'node:assert/strict'
import { generateKeyPair, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import {
  signRecord, verifyRecord, MAX_RECORD_BYTES, MAX_RECORD_TTL_MS,
  RecordError, RecordExpiredError, RecordMalformedError, RecordModelError, RecordSignatureError, RecordSpanError
} from '../../src/routing/records.ts'
import { MODEL, makeRecord, newIdentity, type TestIdentity } from './helpers.ts'
import type { PrivateKey } from '@libp2p/interface'

/** Builds an envelope by hand, following the format documented in records.ts. */
function envelope (key: PrivateKey, payload: Uint8Array, version = 1): Uint8Array {
  const domain = new TextEncoder().encode('strata/peer-record/v1\n')
  const signature = key.sign(Buffer.concat([domain, payload])) as Uint8Array
  const pub = publicKeyToProtobuf(key.publicKey)
  const header = Buffer.alloc(3)
  header.writeUInt8(version, 0)
  header.writeUInt16BE(pub.byteLength, 1)
  const sigLen = Buffer.alloc(2)
  sigLen.writeUInt16BE(signature.byteLength, 0)
  return Buffer.concat([header, pub, sigLen, signature, payload])
}

function json (value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

describe('routing/records', () => {
  let alice: TestIdentity
  let bob: TestIdentity

  before(async () => {
    alice = await newIdentity()
    bob = await newIdentity()
  })

  it('round-trips a signed record', () => {
    const record = makeRecord(alice.peerId, { start: 3, end: 9, state: 'draining', seq: 42 })
    const bytes = signRecord(record, alice.key)
    assert.ok(bytes.byteLength < 1024, `record is ${bytes.byteLength} bytes`)
    assert.deepEqual(verifyRecord(bytes, { expectedPeerId: alice.peerId, modelId: MODEL, block: 3, numBlocks: 9 }), record)
  })

  it('carries open sessions and slots, and still reads records of peers that do not send them', () => {
    const record = makeRecord(alice.peerId, { sessions: 3, maxSessions: 16 })
    assert.deepEqual(verifyRecord(signRecord(record, alice.key)), record)
    const older = makeRecord(alice.peerId)
    assert.ok(!('sessions' in older))
    const read = verifyRecord(envelope(alice.key, json(older)))
    assert.deepEqual(read, older)
    assert.equal(read.sessions, undefined)
    for (const bad of [{ sessions: -1 }, { sessions: 1.5 }, { maxSessions: '16' }, { sessions: null }]) {
      assert.throws(() => verifyRecord(envelope(alice.key, json({ ...older, ...bad }))), RecordMalformedError, JSON.stringify(bad))
    }
  })

  it('drops unknown payload fields', () => {
    const record = makeRecord(alice.peerId)
    const bytes = envelope(alice.key, json({ ...record, extra: 'ignored' }))
    assert.deepEqual(verifyRecord(bytes), record)
  })

  it('rejects a tampered payload', () => {
    const bytes = signRecord(makeRecord(alice.peerId, { start: 0, end: 4 }), alice.key)
    const text = Buffer.from(bytes).toString('latin1').replace('"end":4', '"end":8')
    assert.throws(() => verifyRecord(Buffer.from(text, 'latin1')), RecordSignatureError)
  })

  it('rejects a signature that does not match the embedded key', () => {
    const bytes = Buffer.from(signRecord(makeRecord(alice.peerId), alice.key))
    const pub = Buffer.from(publicKeyToProtobuf(alice.key.publicKey))
    Buffer.from(publicKeyToProtobuf(bob.key.publicKey)).copy(bytes, bytes.indexOf(pub))
    assert.throws(() => verifyRecord(bytes), RecordSignatureError)
  })

  it('rejects a record signed by another key than its peer id', () => {
    const forged = signRecord(makeRecord(alice.peerId), bob.key)
    assert.throws(() => verifyRecord(forged), (err: Error) => err instanceof RecordSignatureError && /signed by/.test(err.message))
  })

  it('rejects a record of another peer than expected', () => {
    const bytes = signRecord(makeRecord(alice.peerId), alice.key)
    assert.throws(() => verifyRecord(bytes, { expectedPeerId: bob.peerId }), RecordSignatureError)
  })

  it('rejects expired records and records valid too far ahead', () => {
    const now = Date.now()
    const expired = signRecord(makeRecord(alice.peerId, { expiresAt: now - 1 }), alice.key)
    assert.throws(() => verifyRecord(expired, { now }), RecordExpiredError)
    const atExpiry = signRecord(makeRecord(alice.peerId, { expiresAt: now }), alice.key)
    assert.throws(() => verifyRecord(atExpiry, { now }), RecordExpiredError)
    const tooLong = signRecord(makeRecord(alice.peerId, { expiresAt: now + MAX_RECORD_TTL_MS + 1 }), alice.key)
    assert.throws(() => verifyRecord(tooLong, { now }), RecordMalformedError)
  })

  it('rejects a span that does not contain the block or exceeds the model', () => {
    const bytes = signRecord(makeRecord(alice.peerId, { start: 4, end: 8 }), alice.key)
    assert.equal(verifyRecord(bytes, { block: 4 }).start, 4)
    assert.equal(verifyRecord(bytes, { block: 7, numBlocks: 8 }).end, 8)
    assert.throws(() => verifyRecord(bytes, { block: 3 }), RecordSpanError)
    assert.throws(() => verifyRecord(bytes, { block: 8 }), RecordSpanError)
    assert.throws(() => verifyRecord(bytes, { numBlocks: 6 }), RecordSpanError)
  })

  it('rejects a record of another model', () => {
    const bytes = signRecord(makeRecord(alice.peerId), alice.key)
    assert.throws(() => verifyRecord(bytes, { modelId: 'other-model' }), RecordModelError)
  })

  it('rejects a record of another architecture, so a client never chains mixed blocks', () => {
    const bytes = signRecord(makeRecord(alice.peerId, { arch: 'qwen2' }), alice.key)
    assert.equal(verifyRecord(bytes, { modelId: MODEL, arch: 'qwen2' }).arch, 'qwen2')
    assert.throws(() => verifyRecord(bytes, { modelId: MODEL, arch: 'llama' }), (err: Error) => err instanceof RecordModelError && /architecture qwen2, not llama/.test(err.message))
  })

  it('rejects malformed envelopes', () => {
    const good = signRecord(makeRecord(alice.peerId), alice.key)
    const cases: Array<[string, Uint8Array]> = [
      ['empty', new Uint8Array(0)],
      ['truncated header', good.subarray(0, 2)],
      ['truncated key', good.subarray(0, 20)],
      ['truncated signature', good.subarray(0, 60)],
      ['unknown version', envelope(alice.key, json(makeRecord(alice.peerId)), 2)],
      ['oversized', new Uint8Array(MAX_RECORD_BYTES + 1)],
      ['payload not JSON', envelope(alice.key, new TextEncoder().encode('not json'))],
      ['payload not UTF-8', envelope(alice.key, new Uint8Array([0x22, 0xff, 0x22]))],
      ['payload an array', envelope(alice.key, json([1, 2]))],
      ['payload null', envelope(alice.key, json(null))],
      ['bad key bytes', (() => { const b = Buffer.from(good); b[4] ^= 0xff; return b })()]
    ]
    for (const [name, bytes] of cases) {
      assert.throws(() => verifyRecord(bytes), RecordMalformedError, name)
    }
  })

  it('validates every field, both when signing and when verifying', () => {
    const bad: Array<[string, Record<string, unknown>]> = [
      ['missing peerId', { peerId: undefined }],
      ['peerId not base58', { peerId: 'not a peer id!' }],
      ['empty modelId', { modelId: '' }],
      ['modelId with spaces', { modelId: 'a model' }],
      ['modelId too long', { modelId: 'm'.repeat(257) }],
      ['multiaddrs not array', { multiaddrs: '/ip4/1.2.3.4/tcp/1' }],
      ['invalid multiaddr', { multiaddrs: ['/ip4/999.1.1.1/tcp/1'] }],
      ['too many multiaddrs', { multiaddrs: Array.from({ length: 17 }, (_, i) => `/ip4/127.0.0.1/tcp/${i + 1}`) }],
      ['start negative', { start: -1 }],
      ['start fractional', { start: 0.5 }],
      ['empty span', { start: 4, end: 4 }],
      ['reversed span', { start: 5, end: 4 }],
      ['end as string', { end: '4' }],
      ['unknown state', { state: 'busy' }],
      ['throughput NaN', { throughput: Number.NaN }],
      ['throughput negative', { throughput: -1 }],
      ['cacheTokensLeft fractional', { cacheTokensLeft: 1.5 }],
      ['dtype uppercase', { dtype: 'F32' }],
      ['arch missing', { arch: undefined }],
      ['arch with spaces', { arch: 'qwen 2' }],
      ['version empty', { version: '' }],
      ['expiresAt unsafe', { expiresAt: 2 ** 60 }],
      ['seq negative', { seq: -1 }],
      ['sessions negative', { sessions: -1 }],
      ['maxSessions fractional', { maxSessions: 2.5 }]
    ]
    for (const [name, override] of bad) {
      const record = { ...makeRecord(alice.peerId), ...override }
      assert.throws(() => signRecord(record as never, alice.key), RecordMalformedError, `sign: ${name}`)
      // NaN does not survive JSON; every other case must also be caught on the reading side
      if (!Number.isNaN(override.throughput)) {
        assert.throws(() => verifyRecord(envelope(alice.key, json(record))), RecordMalformedError, `verify: ${name}`)
      }
    }
  })

  it('refuses to sign with a non-Ed25519 key', async () => {
    const secp = await generateKeyPair('secp256k1')
    assert.throws(() => signRecord(makeRecord(alice.peerId), secp), RecordSignatureError)
  })

  it('uses one error base class', () => {
    for (const E of [RecordExpiredError, RecordMalformedError, RecordModelError, RecordSignatureError, RecordSpanError]) {
      const err = new E('x')
      assert.ok(err instanceof RecordError)
      assert.equal(err.name, E.name)
    }
  })
})
