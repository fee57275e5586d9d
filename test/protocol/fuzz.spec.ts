// Every input, however mangled, must decode to a valid message or throw a ProtocolError: no
// RangeError/TypeError/SyntaxError, no hang, no huge allocation. Seeded, so failures reproduce.
import assert from 'node:assert/strict'
import { MESSAGE_KIND_IDS, ProtocolError, WIRE_VERSION, decodeMessage, encodeMessage } from '../../src/protocol/index.ts'
import { sampleMessages } from './samples.ts'
import { mulberry32 } from '../../src/loadbalance/random.ts'

/** seeded, so a failing case reproduces */
const prng = mulberry32

type Rng = () => number
const int = (rng: Rng, n: number): number => Math.floor(rng() * n)
const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]

/** Decodes `bytes`; if it yields a message, that message must re-encode to a stable frame. */
function check (bytes: Uint8Array, label: string): 'ok' | 'rejected' {
  let decoded
  try {
    decoded = decodeMessage(bytes)
  } catch (err) {
    if (err instanceof ProtocolError) return 'rejected'
    assert.fail(`${label}: ${String(err)} escaped for input ${Buffer.from(bytes.subarray(0, 200)).toString('hex')}`)
  }
  // Whatever the decoder accepts the encoder must accept too, and re-encoding must be stable.
  const once = encodeMessage(decoded)
  const twice = encodeMessage(decodeMessage(once))
  assert.deepEqual(twice, once, `${label}: re-encoding is not stable`)
  return 'ok'
}

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x2d, 0x30, 0x65, 0x2e]

function mutate (rng: Rng, frame: Uint8Array): Uint8Array {
  let bytes = Array.from(frame)
  const edits = 1 + int(rng, 4)
  for (let e = 0; e < edits; e++) {
    const at = int(rng, bytes.length + 1)
    switch (int(rng, 6)) {
      case 0: bytes[at] = int(rng, 256); break
      case 1: bytes[at] = pick(rng, INTERESTING_BYTES); break
      case 2: bytes[at] = (bytes[at] ?? 0) ^ (1 << int(rng, 8)); break
      case 3: bytes.splice(at, 1 + int(rng, 8)); break
      case 4: bytes.splice(at, 0, ...Array.from({ length: 1 + int(rng, 8) }, () => int(rng, 256))); break
      default: bytes = bytes.slice(0, at)
    }
  }
  return Uint8Array.from(bytes)
}

/** Replaces one value somewhere in the JSON header with a hostile one, keeping the frame consistent. */
const HOSTILE_VALUES: unknown[] = [
  null, true, -1, 0, 1.5, 2 ** 32, 4294967295, 1e308, -0, '', 'x'.repeat(2000), '0', [], [1], [1, 1, 1], [0, 1, 1],
  [64, 8192, 65536], {}, { dtype: 'f32', shape: [1, 1, 1] }, 'f16', 'bf16', 'busy', '__proto__'
]

function mutateHeader (rng: Rng, frame: Uint8Array): Uint8Array {
  const headerLength = new DataView(frame.buffer, frame.byteOffset).getUint32(2, true)
  const header = JSON.parse(new TextDecoder().decode(frame.subarray(6, 6 + headerLength))) as Record<string, unknown>
  const target = pickObject(rng, header)
  const keys = Object.keys(target)
  const key = keys.length > 0 && rng() < 0.8 ? pick(rng, keys) : pick(rng, ['extra', 'constructor', 'kind', 'data'])
  if (rng() < 0.15) delete target[key]
  else target[key] = structuredClone(pick(rng, HOSTILE_VALUES))
  const newHeader = new TextEncoder().encode(JSON.stringify(header))
  const payload = frame.subarray(6 + headerLength)
  const out = new Uint8Array(6 + newHeader.length + payload.length)
  out.set(frame.subarray(0, 2))
  new DataView(out.buffer).setUint32(2, newHeader.length, true)
  out.set(newHeader, 6)
  out.set(payload, 6 + newHeader.length)
  return out
}

function pickObject (rng: Rng, value: Record<string, unknown>): Record<string, unknown> {
  const nested = Object.values(value).filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null)
  return nested.length > 0 && rng() < 0.5 ? pickObject(rng, pick(rng, nested)) : value
}

function randomBytes (rng: Rng): Uint8Array {
  const bytes = Uint8Array.from({ length: int(rng, 96) }, () => int(rng, 256))
  // Half the time start with a plausible prelude, so the fuzzer gets past the first checks.
  if (rng() < 0.5 && bytes.length >= 6) {
    bytes[0] = WIRE_VERSION
    bytes[1] = 1 + int(rng, 11)
    new DataView(bytes.buffer).setUint32(2, rng() < 0.5 ? int(rng, bytes.length) : int(rng, 2 ** 32), true)
  }
  return bytes
}

describe('protocol/fuzz: the decoder only ever returns a message or throws a ProtocolError', function () {
  this.timeout(20_000)
  const frames = sampleMessages().map(encodeMessage)

  it('survives 5000 random byte strings', () => {
    const rng = prng(1)
    for (let i = 0; i < 5000; i++) check(randomBytes(rng), `random #${i}`)
  })

  it('survives every truncation of every valid frame', () => {
    frames.forEach((frame, f) => {
      for (let length = 0; length < frame.length; length++) {
        assert.equal(check(frame.subarray(0, length), `frame ${f} cut at ${length}`), 'rejected')
      }
    })
  })

  it('survives 10000 single and multi-byte mutations of valid frames', () => {
    const rng = prng(2)
    const outcomes = { ok: 0, rejected: 0 }
    for (let i = 0; i < 10000; i++) outcomes[check(mutate(rng, pick(rng, frames)), `mutation #${i}`)]++
    assert.ok(outcomes.ok > 0 && outcomes.rejected > 0, JSON.stringify(outcomes))
  })

  it('survives 5000 hostile header values in otherwise consistent frames', () => {
    const rng = prng(3)
    for (let i = 0; i < 5000; i++) check(mutateHeader(rng, pick(rng, frames)), `header mutation #${i}`)
  })

  it('survives every kind byte on every valid frame', () => {
    frames.forEach((frame, f) => {
      for (let kind = 0; kind < 256; kind++) {
        const copy = frame.slice()
        copy[1] = kind
        const outcome = check(copy, `frame ${f} as kind ${kind}`)
        if (kind === frame[1]) assert.equal(outcome, 'ok')
      }
    })
    assert.equal(Math.max(...Object.values(MESSAGE_KIND_IDS)), 16)
  })
})
