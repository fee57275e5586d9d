import assert from 'node:assert/strict'
import {
  DEFAULT_FRAME_LIMITS,
  FrameTooLargeError,
  INFERENCE_PROTOCOL,
  INFO_PROTOCOL,
  InvalidFieldError,
  LimitExceededError,
  MESSAGE_KIND_IDS,
  MalformedFrameError,
  ProtocolError,
  UnknownMessageKindError,
  UnsupportedVersionError,
  WIRE_VERSION,
  decodeMessage,
  encodeMessage,
  type FrameLimits,
  type Message
} from '../../src/protocol/index.ts'
import { sampleMessages } from './samples.ts'

/** Builds a frame by hand: | version | kind | header_len u32 LE | header | payload |. */
function rawFrame (kind: number, header: string | Uint8Array, payload: Uint8Array = new Uint8Array(0), version = WIRE_VERSION): Uint8Array {
  const headerBytes = typeof header === 'string' ? new TextEncoder().encode(header) : header
  const frame = new Uint8Array(6 + headerBytes.length + payload.length)
  frame[0] = version
  frame[1] = kind
  new DataView(frame.buffer).setUint32(2, headerBytes.length, true)
  frame.set(headerBytes, 6)
  frame.set(payload, 6 + headerBytes.length)
  return frame
}

const json = (value: unknown): string => JSON.stringify(value)
const ID = MESSAGE_KIND_IDS
const OPEN = { sessionId: 's', modelId: 'm', start: 0, end: 2, maxLength: 16, wireDtype: 'f32' }
const STEP = { stepId: 1, position: 0, hidden: { dtype: 'f32', shape: [1, 2, 3] } }
const stepPayload = (bytes = 24): Uint8Array => new Uint8Array(bytes)
const TOKEN = 'tok-0123456789abcdef'

function rejects (frame: Uint8Array, errorClass: new (...args: never[]) => ProtocolError, message: RegExp, limits?: Partial<FrameLimits>): void {
  assert.throws(() => decodeMessage(frame, limits), (err: unknown) => {
    assert.ok(err instanceof errorClass, `expected ${errorClass.name}, got ${String(err)}`)
    assert.match((err as Error).message, message)
    return true
  })
}

describe('protocol/messages: constants', () => {
  it('names versioned protocol ids', () => {
    assert.equal(INFERENCE_PROTOCOL, '/strata/inference/1.0.0')
    assert.equal(INFO_PROTOCOL, '/strata/info/1.0.0')
    assert.equal(WIRE_VERSION, 1)
  })

  it('keeps the message kind ids fixed', () => {
    assert.deepEqual(MESSAGE_KIND_IDS, {
      open: 1, opened: 2, step: 3, result: 4, truncate: 5, truncated: 6, close: 7, error: 8, info_request: 9, info: 10,
      push_route: 11, push_routed: 12, push: 13, pushed: 14, direct_request: 15, direct_offer: 16
    })
  })
})

describe('protocol/messages: round trips', () => {
  for (const msg of sampleMessages()) {
    const label = 'hidden' in msg ? `${msg.kind} (${msg.hidden.dtype})` : `${msg.kind}${msg.kind === 'push_route' ? ` (${Object.keys(msg).join(' ')})` : msg.kind === 'error' ? ` (${msg.code})` : ''}`
    it(`${label} decodes to what was encoded`, () => {
      assert.deepEqual(decodeMessage(encodeMessage(msg)), msg)
    })
  }

  it('lays a step frame out as | version | kind | header_len | JSON header | raw LE tensor |', () => {
    const data = new Float32Array([1, -2])
    const frame = encodeMessage({ kind: 'step', stepId: 7, position: 3, hidden: { dtype: 'f16', shape: [1, 1, 2], data } })
    assert.equal(frame[0], WIRE_VERSION)
    assert.equal(frame[1], ID.step)
    const headerLength = new DataView(frame.buffer).getUint32(2, true)
    const header = JSON.parse(new TextDecoder().decode(frame.subarray(6, 6 + headerLength)))
    assert.deepEqual(header, { stepId: 7, position: 3, hidden: { dtype: 'f16', shape: [1, 1, 2] } })
    assert.deepEqual([...frame.subarray(6 + headerLength)], [0x00, 0x3c, 0x00, 0xc0])
  })

  it('carries the info document as the payload, so it may exceed the header limit', () => {
    const big = json({ blob: 'x'.repeat(40 * 1024) })
    const frame = encodeMessage({ kind: 'info', json: big })
    assert.equal(new DataView(frame.buffer).getUint32(2, true), 2) // header is "{}"
    assert.deepEqual(decodeMessage(frame), { kind: 'info', json: big })
  })

  it('decodes frames at unaligned offsets of a larger buffer, without aliasing it', () => {
    for (const msg of sampleMessages()) {
      const frame = encodeMessage(msg)
      for (const offset of [1, 2, 3, 7]) {
        const big = new Uint8Array(frame.length + offset + 5).fill(0xaa)
        big.set(frame, offset)
        const decoded = decodeMessage(big.subarray(offset, offset + frame.length))
        big.fill(0)
        assert.deepEqual(decoded, msg)
      }
    }
  })

  it('decodes Node Buffers (pooled, arbitrary byteOffset)', () => {
    const msg = sampleMessages()[3]
    assert.deepEqual(decodeMessage(Buffer.from(encodeMessage(msg))), msg)
  })

  it('does not let the sender\'s limits apply: the receiver chooses', () => {
    const msg: Message = { kind: 'step', stepId: 1, position: 0, hidden: { dtype: 'f16', shape: [1, 9000, 1], data: new Float32Array(9000) } }
    const frame = encodeMessage(msg)
    rejects(frame, LimitExceededError, /step\.hidden\.shape\[1\]: 9000 is over the limit of 8192 positions/)
    assert.deepEqual(decodeMessage(frame, { maxPositions: 9000 }), msg)
  })

  it('treats undefined limits as the defaults', () => {
    const frame = encodeMessage({ kind: 'step', stepId: 1, position: 0, hidden: { dtype: 'f32', shape: [65, 1, 1], data: new Float32Array(65) } })
    rejects(frame, LimitExceededError, /maxBatch/, { maxBatch: undefined })
    assert.equal(DEFAULT_FRAME_LIMITS.maxBatch, 64)
  })
})

describe('protocol/messages: decoder rejects malformed frames', () => {
  const cases: Array<[string, Uint8Array, new (...args: never[]) => ProtocolError, RegExp, Partial<FrameLimits>?]> = [
    ['an empty frame', new Uint8Array(0), MalformedFrameError, /0 bytes, shorter than the 6-byte prelude/],
    ['a truncated prelude', new Uint8Array([1, 7, 2, 0, 0]), MalformedFrameError, /prelude/],
    ['version 0', rawFrame(ID.close, '{}', undefined, 0), UnsupportedVersionError, /wire version 0 is not supported/],
    ['version 2', rawFrame(ID.close, '{}', undefined, 2), UnsupportedVersionError, /version 2/],
    ['kind 0', rawFrame(0, '{}'), UnknownMessageKindError, /unknown message kind 0/],
    ['kind 17', rawFrame(17, '{}'), UnknownMessageKindError, /kind 17/],
    ['direct_request with a short key', rawFrame(ID.direct_request, json({ sessionId: 's', key: 'AAAA' })), InvalidFieldError, /direct_request\.key: must be at least 44 characters/],
    ['direct_request with a key of 44 characters that is not base64', rawFrame(ID.direct_request, json({ sessionId: 's', key: '!'.repeat(44) })), InvalidFieldError, /direct_request\.key: expected 32 bytes in base64/],
    ['direct_offer with a port over 65535', rawFrame(ID.direct_offer, json({ port: 65536, token: 'A'.repeat(22) + '==' })), InvalidFieldError, /direct_offer\.port: expected a TCP port/],
    ['direct_offer with an unknown field', rawFrame(ID.direct_offer, json({ port: 1, token: 'A'.repeat(22) + '==', host: 'x' })), InvalidFieldError, /direct_offer\.host: unknown field/],
    ['kind 255', rawFrame(255, '{}'), UnknownMessageKindError, /kind 255/],
    ['a frame over maxFrameBytes', rawFrame(ID.close, '{}'), FrameTooLargeError, /frame is 8 bytes, limit is 7/, { maxFrameBytes: 7 }],
    ['a header_len over maxHeaderBytes', rawFrame(ID.close, ' '.repeat(17 * 1024)), FrameTooLargeError, /header is 17408 bytes, limit is 16384/],
    ['a header_len past the end', rawFrame(ID.close, '{}').subarray(0, 7), MalformedFrameError, /header_len 2 runs past the end of the 7-byte frame/],
    ['a header_len of 0xffffffff', new Uint8Array([1, ID.close, 0xff, 0xff, 0xff, 0xff, 0x7b, 0x7d]), FrameTooLargeError, /header is 4294967295 bytes/],
    ['an empty header', rawFrame(ID.close, ''), MalformedFrameError, /header is not valid JSON/],
    ['invalid UTF-8', rawFrame(ID.close, new Uint8Array([0x7b, 0xff, 0x7d])), MalformedFrameError, /not valid UTF-8/],
    ['non-JSON', rawFrame(ID.close, '{close}'), MalformedFrameError, /not valid JSON/],
    ['trailing text after the JSON', rawFrame(ID.close, '{} x'), MalformedFrameError, /not valid JSON/],
    ['deeply nested JSON', rawFrame(ID.close, '['.repeat(8000) + ']'.repeat(8000)), InvalidFieldError, /close: expected an object, got an array/],
    ['a JSON array header', rawFrame(ID.close, '[]'), InvalidFieldError, /close: expected an object, got an array of 0 items/],
    ['a JSON null header', rawFrame(ID.close, 'null'), InvalidFieldError, /expected an object, got null/],
    ['a JSON string header', rawFrame(ID.close, '"{}"'), InvalidFieldError, /expected an object, got "{}"/],
    ['an unknown field', rawFrame(ID.close, json({ reason: 'x' })), InvalidFieldError, /close\.reason: unknown field/],
    ['a "kind" field in the header', rawFrame(ID.truncate, json({ kind: 'truncate', length: 1 })), InvalidFieldError, /truncate\.kind: unknown field/],
    ['a __proto__ field', rawFrame(ID.close, '{"__proto__":{"x":1}}'), InvalidFieldError, /close\.__proto__: unknown field/],
    ['an inherited name as a field', rawFrame(ID.truncate, json({ constructor: 1 })), InvalidFieldError, /truncate\.length: missing/],
    ['trailing bytes after a header-only message', rawFrame(ID.close, '{}', new Uint8Array(1)), MalformedFrameError, /close frame has 1 trailing bytes/],
    // open
    ['open without sessionId', rawFrame(ID.open, json({ ...OPEN, sessionId: undefined })), InvalidFieldError, /open\.sessionId: missing/],
    ['open with a numeric sessionId', rawFrame(ID.open, json({ ...OPEN, sessionId: 5 })), InvalidFieldError, /open\.sessionId: expected a string, got 5/],
    ['open with an empty sessionId', rawFrame(ID.open, json({ ...OPEN, sessionId: '' })), InvalidFieldError, /open\.sessionId: must not be empty/],
    ['open with a 65-char sessionId', rawFrame(ID.open, json({ ...OPEN, sessionId: 'x'.repeat(65) })), LimitExceededError, /open\.sessionId: 65 is over the limit of 64 characters/],
    ['open with a 129-char modelId', rawFrame(ID.open, json({ ...OPEN, modelId: 'x'.repeat(129) })), LimitExceededError, /open\.modelId: 129 is over the limit of 128/],
    ['open with a negative start', rawFrame(ID.open, json({ ...OPEN, start: -1 })), InvalidFieldError, /open\.start: expected an integer in \[0, 4294967295\], got -1/],
    ['open with a fractional end', rawFrame(ID.open, json({ ...OPEN, end: 1.5 })), InvalidFieldError, /open\.end: .* got 1\.5/],
    ['open with a string end', rawFrame(ID.open, json({ ...OPEN, end: '2' })), InvalidFieldError, /open\.end: .* got "2"/],
    ['open with end = start', rawFrame(ID.open, json({ ...OPEN, start: 2, end: 2 })), InvalidFieldError, /open\.end: block span \[2, 2\) is empty/],
    ['open with a huge maxLength', rawFrame(ID.open, json({ ...OPEN, maxLength: 2 ** 32 })), InvalidFieldError, /open\.maxLength: .* got 4294967296/],
    ['open with an overflowing number', rawFrame(ID.open, '{"sessionId":"s","modelId":"m","start":1e999,"end":2,"maxLength":1,"wireDtype":"f32"}'), InvalidFieldError, /open\.start: .* got Infinity/],
    ['open with maxLength 0', rawFrame(ID.open, json({ ...OPEN, maxLength: 0 })), InvalidFieldError, /open\.maxLength: expected an integer in \[1,/],
    ['open with null wireDtype', rawFrame(ID.open, json({ ...OPEN, wireDtype: null })), InvalidFieldError, /open\.wireDtype: expected one of "f32", "f16", got null/],
    ['open with wireDtype bf16', rawFrame(ID.open, json({ ...OPEN, wireDtype: 'bf16' })), InvalidFieldError, /open\.wireDtype: .* got "bf16"/],
    ['opened with end < start', rawFrame(ID.opened, json({ sessionId: 's', start: 5, end: 1, maxLength: 1 })), InvalidFieldError, /opened\.end/],
    // step / result
    ['step without hidden', rawFrame(ID.step, json({ ...STEP, hidden: undefined }), stepPayload()), InvalidFieldError, /step\.hidden: missing/],
    ['step with a NaN-like stepId', rawFrame(ID.step, json({ ...STEP, stepId: null }), stepPayload()), InvalidFieldError, /step\.stepId: .* got null/],
    ['step with dtype f64', rawFrame(ID.step, json({ ...STEP, hidden: { dtype: 'f64', shape: [1, 2, 3] } }), stepPayload()), InvalidFieldError, /step\.hidden\.dtype/],
    ['step with a 2-d shape', rawFrame(ID.step, json({ ...STEP, hidden: { dtype: 'f32', shape: [2, 3] } }), stepPayload()), InvalidFieldError, /step\.hidden\.shape: expected 3 dimensions, got 2/],
    ['step with a zero dimension', rawFrame(ID.step, json({ ...STEP, hidden: { dtype: 'f32', shape: [1, 0, 3] } })), InvalidFieldError, /step\.hidden\.shape\[1\]: expected an integer in \[1,/],
    ['step with a string dimension', rawFrame(ID.step, json({ ...STEP, hidden: { dtype: 'f32', shape: [1, '2', 3] } }), stepPayload()), InvalidFieldError, /shape\[1\]/],
    ['step with shape as an object', rawFrame(ID.step, json({ ...STEP, hidden: { dtype: 'f32', shape: { 0: 1 } } }), stepPayload()), InvalidFieldError, /shape: expected an array, got an object/],
    ['step with batch over the limit', rawFrame(ID.step, json({ ...STEP, hidden: { dtype: 'f32', shape: [65, 1, 1] } }), stepPayload(260)), LimitExceededError, /shape\[0\]: 65 is over the limit of 64 rows \(maxBatch\)/],
    ['step with hidden over the limit', rawFrame(ID.step, json({ ...STEP, hidden: { dtype: 'f32', shape: [1, 1, 65537] } })), LimitExceededError, /shape\[2\]: 65537 .* \(maxHidden\)/],
    ['step with a huge claimed shape and no payload', rawFrame(ID.step, json({ ...STEP, hidden: { dtype: 'f32', shape: [64, 8192, 65536] } })), MalformedFrameError, /step payload is 0 bytes, shape \[64, 8192, 65536\] as f32 needs 137438953472/],
    ['step with a short payload', rawFrame(ID.step, json(STEP), stepPayload(23)), MalformedFrameError, /step payload is 23 bytes, .* needs 24/],
    ['step with trailing payload bytes', rawFrame(ID.step, json(STEP), stepPayload(25)), MalformedFrameError, /step payload is 25 bytes/],
    ['step with an extra hidden field', rawFrame(ID.step, json({ ...STEP, hidden: { ...STEP.hidden, data: [] } }), stepPayload()), InvalidFieldError, /step\.hidden\.data: unknown field/],
    ['step with a next field (push is set per session by push_route)', rawFrame(ID.step, json({ ...STEP, next: { peerId: 'p', multiaddrs: [], sessionId: 's' } }), stepPayload()), InvalidFieldError, /step\.next: unknown field/],
    // push_route / push / pushed
    ['push_route with to = null', rawFrame(ID.push_route, json({ to: null })), InvalidFieldError, /push_route\.to: expected an object, got null/],
    ['push_route with to lacking multiaddrs', rawFrame(ID.push_route, json({ to: { peerId: 'p', sessionId: 's', token: TOKEN } })), InvalidFieldError, /push_route\.to\.multiaddrs: missing/],
    ['push_route with a non-string multiaddr', rawFrame(ID.push_route, json({ to: { peerId: 'p', multiaddrs: ['/ip4/1.2.3.4', 7], sessionId: 's', token: TOKEN } })), InvalidFieldError, /push_route\.to\.multiaddrs\[1\]: expected a string, got 7/],
    ['push_route with 17 multiaddrs', rawFrame(ID.push_route, json({ to: { peerId: 'p', multiaddrs: Array(17).fill('/a'), sessionId: 's', token: TOKEN } })), LimitExceededError, /multiaddrs: 17 is over the limit of 16 items/],
    ['push_route with an unknown to field', rawFrame(ID.push_route, json({ to: { peerId: 'p', multiaddrs: [], sessionId: 's', token: TOKEN, ttl: 1 } })), InvalidFieldError, /push_route\.to\.ttl: unknown field/],
    ['push_route with a short token', rawFrame(ID.push_route, json({ from: { peerId: 'p', token: 'abc' } })), InvalidFieldError, /push_route\.from\.token: must be at least 16 characters, got 3/],
    ['push_route with a 129-char token', rawFrame(ID.push_route, json({ from: { peerId: 'p', token: 'x'.repeat(129) } })), LimitExceededError, /push_route\.from\.token: 129 is over the limit of 128/],
    ['push_route from without a peer', rawFrame(ID.push_route, json({ from: { token: TOKEN } })), InvalidFieldError, /push_route\.from\.peerId: missing/],
    ['push without a token', rawFrame(ID.push, json({ ...STEP, sessionId: 's' }), stepPayload()), InvalidFieldError, /push\.token: missing/],
    ['push with a numeric token', rawFrame(ID.push, json({ ...STEP, sessionId: 's', token: 12345678901234567 }), stepPayload()), InvalidFieldError, /push\.token: expected a string/],
    ['push with a short payload', rawFrame(ID.push, json({ ...STEP, sessionId: 's', token: TOKEN }), stepPayload(23)), MalformedFrameError, /push payload is 23 bytes, .* needs 24/],
    ['push with batch over the limit', rawFrame(ID.push, json({ ...STEP, sessionId: 's', token: TOKEN, hidden: { dtype: 'f32', shape: [2, 1, 3] } }), stepPayload()), LimitExceededError, /push\.hidden\.shape\[0\]: 2 is over the limit of 1/, { maxBatch: 1 }],
    ['pushed at position 0', rawFrame(ID.pushed, json({ stepId: 1, position: 0 })), InvalidFieldError, /pushed\.position/],
    ['pushed with a payload', rawFrame(ID.pushed, json({ stepId: 1, position: 1 }), new Uint8Array([1])), MalformedFrameError, /pushed frame has 1 trailing bytes/],
    ['result with position < positions computed', rawFrame(ID.result, json({ ...STEP, position: 1 }), stepPayload()), InvalidFieldError, /result\.position: 1 is less than the 2 positions/],
    // truncate / error / info
    ['truncate with a negative length', rawFrame(ID.truncate, json({ length: -3 })), InvalidFieldError, /truncate\.length: .* got -3/],
    ['truncated with a boolean length', rawFrame(ID.truncated, json({ length: true })), InvalidFieldError, /truncated\.length: .* got boolean/],
    ['error with an unknown code', rawFrame(ID.error, json({ code: 'oops', message: '' })), InvalidFieldError, /error\.code: expected one of "busy", .* got "oops"/],
    ['error with a 1025-char message', rawFrame(ID.error, json({ code: 'internal', message: 'x'.repeat(1025) })), LimitExceededError, /error\.message: 1025 is over the limit of 1024/],
    ['info_request with a payload', rawFrame(ID.info_request, '{}', new Uint8Array([1, 2])), MalformedFrameError, /info_request frame has 2 trailing bytes/],
    ['info with header fields', rawFrame(ID.info, json({ json: '{}' }), new TextEncoder().encode('{}')), InvalidFieldError, /info\.json: unknown field/],
    ['info with an empty payload', rawFrame(ID.info, '{}'), MalformedFrameError, /info payload is not valid JSON/],
    ['info with non-JSON payload', rawFrame(ID.info, '{}', new TextEncoder().encode('{"a":')), MalformedFrameError, /info payload is not valid JSON/],
    ['info with invalid UTF-8', rawFrame(ID.info, '{}', new Uint8Array([0x22, 0xc3, 0x22])), MalformedFrameError, /info payload is not valid UTF-8/],
    ['info over 64 KiB', rawFrame(ID.info, '{}', new TextEncoder().encode(json('x'.repeat(64 * 1024)))), LimitExceededError, /info\.json: 65538 is over the limit of 65536 bytes/]
  ]
  for (const [name, frame, errorClass, message, limits] of cases) {
    it(`rejects ${name} with ${errorClass.name}`, () => rejects(frame, errorClass, message, limits))
  }

  it('gives every error a stable code and a name', () => {
    const err = (() => { try { decodeMessage(new Uint8Array(0)) } catch (e) { return e as ProtocolError } })()
    assert.ok(err instanceof ProtocolError)
    assert.equal(err.name, 'MalformedFrameError')
    assert.equal(err.code, 'malformed_frame')
  })
})

describe('protocol/messages: encoder rejects invalid messages', () => {
  const tensor = { dtype: 'f32' as const, shape: [1, 1, 2] as [number, number, number], data: new Float32Array(2) }
  const cases: Array<[string, unknown, new (...args: never[]) => ProtocolError, RegExp]> = [
    ['an unknown kind', { kind: 'hello' }, UnknownMessageKindError, /unknown message kind "hello"/],
    ['an inherited name as kind', { kind: 'toString' }, UnknownMessageKindError, /toString/],
    ['a NaN stepId', { kind: 'step', stepId: NaN, position: 0, hidden: tensor }, InvalidFieldError, /step\.stepId: .* got NaN/],
    ['a too-long sessionId', { kind: 'opened', sessionId: 'x'.repeat(65), start: 0, end: 1, maxLength: 1 }, LimitExceededError, /opened\.sessionId/],
    ['an extra field', { kind: 'close', reason: 'done' }, InvalidFieldError, /close\.reason: unknown field/],
    ['data that is not a Float32Array', { kind: 'result', stepId: 0, position: 1, hidden: { ...tensor, data: [0, 0] } }, InvalidFieldError, /result\.hidden\.data: expected a Float32Array/],
    ['data that does not match the shape', { kind: 'step', stepId: 0, position: 0, hidden: { ...tensor, shape: [1, 1, 3] } }, InvalidFieldError, /step\.hidden\.data: has 2 values, shape \[1, 1, 3\] needs 3/],
    ['a missing tensor', { kind: 'step', stepId: 0, position: 0 }, InvalidFieldError, /step\.hidden: missing/],
    ['info that is not JSON', { kind: 'info', json: '{' }, InvalidFieldError, /info\.json: is not valid JSON/],
    ['info with an unpaired surrogate', { kind: 'info', json: '"\ud800"' }, InvalidFieldError, /unpaired surrogate/],
    ['info over 64 KiB', { kind: 'info', json: json('é'.repeat(33 * 1024)) }, LimitExceededError, /info\.json: 67586 is over the limit of 65536 bytes/]
  ]
  for (const [name, msg, errorClass, message] of cases) {
    it(`refuses ${name}`, () => {
      assert.throws(() => encodeMessage(msg as Message), (err: unknown) => {
        assert.ok(err instanceof errorClass, `expected ${errorClass.name}, got ${String(err)}`)
        assert.match((err as Error).message, message)
        return true
      })
    })
  }
})
