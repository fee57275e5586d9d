// Signed peer records: what a peer tells the swarm about itself (span, state, capacity).
//
// A signed record is an envelope of at most MAX_RECORD_BYTES (integers big-endian):
//
//   | version u8 = 1 | keyLen u16 | public key (libp2p protobuf, Ed25519) | sigLen u16 | signature (64) | payload |
//
//   payload   = UTF-8 JSON object with the PeerRecord fields (unknown fields are dropped)
//   signature = Ed25519 over RECORD_SIGNING_DOMAIN || payload
//
// Readers check, in order: size and framing, the signature, every field, signer == record.peerId,
// the caller's expectations (peer id, model, architecture), expiry, and the span (block inside, end <= numBlocks).
// Each record is signed by its own peer, so no peer can forge or overwrite another's record.
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { PrivateKey } from '@libp2p/interface'

export type PeerState = 'joining' | 'online' | 'draining'

/** One peer's announcement of the span of one model it serves. */
export interface PeerRecord {
  /** canonical (base58btc) libp2p peer id of the signer */
  peerId: string
  /** model identity, 1–256 printable ASCII characters without spaces */
  modelId: string
  /** the model's block architecture (config.json model_type: llama, mistral, qwen2, qwen3) */
  arch: string
  /** addresses to reach the peer, at most MAX_MULTIADDRS */
  multiaddrs: string[]
  /** first hosted block */
  start: number
  /** one past the last hosted block (exclusive) */
  end: number
  state: PeerState
  /** measured throughput, requests (tokens) per second */
  throughput: number
  /** how many more tokens of KV cache the peer can hold */
  cacheTokensLeft: number
  /** compute dtype, e.g. 'f32', 'f16', 'q4' */
  dtype: string
  /** software version of the peer */
  version: string
  /** inference sessions open on the peer now (absent in records of older peers) */
  sessions?: number
  /** session slots the peer has at most (absent in records of older peers) */
  maxSessions?: number
  /** the record is invalid from this time on, ms since the epoch */
  expiresAt: number
  /** increases with every new record from the same peer */
  seq: number
}

export interface VerifyRecordOptions {
  /** current time, ms since the epoch (default Date.now()) */
  now?: number
  /** the record must come from this peer (e.g. the peer that served it) */
  expectedPeerId?: string
  /** the record must be for this model */
  modelId?: string
  /** the record must be for this block architecture */
  arch?: string
  /** the record's span must contain this block */
  block?: number
  /** the model's block count: the span must end at or before it */
  numBlocks?: number
}

export const MAX_RECORD_BYTES = 16 * 1024
export const MAX_MULTIADDRS = 16
/** records may not claim validity further ahead than this (ms) */
export const MAX_RECORD_TTL_MS = 60 * 60 * 1000
/** upper bound on block indices, far above any real model's depth */
export const MAX_BLOCKS = 1 << 16
/** upper bound on a peer's session counts */
export const MAX_SESSIONS = 1 << 20

const ENVELOPE_VERSION = 1
const ED25519_SIGNATURE_BYTES = 64
const RECORD_SIGNING_DOMAIN = new TextEncoder().encode('strata/peer-record/v1\n')
const PEER_STATES: readonly PeerState[] = ['joining', 'online', 'draining']
const MODEL_ID = /^[\x21-\x7e]{1,256}$/
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{32,128}$/
const DTYPE = /^[a-z0-9_]{1,16}$/
const ARCH = /^[a-z0-9_]{1,32}$/
const VERSION = /^[\x20-\x7e]{1,64}$/
const MAX_MULTIADDR_CHARS = 512
const MAX_THROUGHPUT = 1e12

export class RecordError extends Error {
  override name = 'RecordError'
}
/** Bad framing, a field of the wrong type or out of range, or an oversized record. */
export class RecordMalformedError extends RecordError {
  override name = 'RecordMalformedError'
}
/** Bad signature, or signed by someone else than the record's or the expected peer. */
export class RecordSignatureError extends RecordError {
  override name = 'RecordSignatureError'
}
export class RecordExpiredError extends RecordError {
  override name = 'RecordExpiredError'
}
/** The span does not contain the requested block or exceeds the model. */
export class RecordSpanError extends RecordError {
  override name = 'RecordSpanError'
}
/** The record is for another model, or another architecture. */
export class RecordModelError extends RecordError {
  override name = 'RecordModelError'
}

/** Validates `record` and signs it with `privateKey` (Ed25519), returning the envelope bytes. */
export function signRecord (record: PeerRecord, privateKey: PrivateKey): Uint8Array {
  if (privateKey.type !== 'Ed25519') {
    throw new RecordSignatureError(`records are signed with Ed25519 keys, not ${privateKey.type}`)
  }
  const payload = new TextEncoder().encode(JSON.stringify(validateRecord(record)))
  const signature = privateKey.sign(signedBytes(payload))
  if (!(signature instanceof Uint8Array)) {
    throw new RecordSignatureError('asynchronous signing is not supported')
  }
  const key = publicKeyToProtobuf(privateKey.publicKey)
  const envelope = new Uint8Array(1 + 2 + key.byteLength + 2 + signature.byteLength + payload.byteLength)
  const view = new DataView(envelope.buffer)
  let at = 0
  view.setUint8(at, ENVELOPE_VERSION); at += 1
  view.setUint16(at, key.byteLength); at += 2
  envelope.set(key, at); at += key.byteLength
  view.setUint16(at, signature.byteLength); at += 2
  envelope.set(signature, at); at += signature.byteLength
  envelope.set(payload, at)
  if (envelope.byteLength > MAX_RECORD_BYTES) {
    throw new RecordMalformedError(`signed record is ${envelope.byteLength} bytes, limit ${MAX_RECORD_BYTES}`)
  }
  return envelope
}

/** Parses and checks a signed record; throws a RecordError subclass on any problem. */
export function verifyRecord (bytes: Uint8Array, opts: VerifyRecordOptions = {}): PeerRecord {
  const { publicKey, signature, payload } = parseEnvelope(bytes)

  let key
  try {
    key = publicKeyFromProtobuf(publicKey)
  } catch (err) {
    throw new RecordMalformedError(`bad public key: ${(err as Error).message}`)
  }
  if (key.type !== 'Ed25519' || signature.byteLength !== ED25519_SIGNATURE_BYTES) {
    throw new RecordMalformedError(`unsupported key type ${key.type} or signature length ${signature.byteLength}`)
  }
  const valid = key.verify(signedBytes(payload), signature)
  if (valid !== true) {
    throw new RecordSignatureError('signature does not match the payload')
  }

  const record = validateRecord(parsePayload(payload))
  const signer = peerIdFromPublicKey(key).toString()
  if (record.peerId !== signer) {
    throw new RecordSignatureError(`record of ${record.peerId} is signed by ${signer}`)
  }
  if (opts.expectedPeerId != null && opts.expectedPeerId !== signer) {
    throw new RecordSignatureError(`expected a record of ${opts.expectedPeerId}, got one of ${signer}`)
  }
  if (opts.modelId != null && record.modelId !== opts.modelId) {
    throw new RecordModelError(`record is for model ${record.modelId}, not ${opts.modelId}`)
  }
  if (opts.arch != null && record.arch !== opts.arch) {
    throw new RecordModelError(`record is for architecture ${record.arch}, not ${opts.arch}`)
  }
  const now = opts.now ?? Date.now()
  if (record.expiresAt <= now) {
    throw new RecordExpiredError(`record expired ${now - record.expiresAt} ms ago`)
  }
  if (record.expiresAt > now + MAX_RECORD_TTL_MS) {
    throw new RecordMalformedError(`record claims validity until ${record.expiresAt}, beyond the ${MAX_RECORD_TTL_MS} ms limit`)
  }
  if (opts.numBlocks != null && record.end > opts.numBlocks) {
    throw new RecordSpanError(`span [${record.start}, ${record.end}) exceeds the model's ${opts.numBlocks} blocks`)
  }
  if (opts.block != null && !(record.start <= opts.block && opts.block < record.end)) {
    throw new RecordSpanError(`span [${record.start}, ${record.end}) does not contain block ${opts.block}`)
  }
  return record
}

function signedBytes (payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(RECORD_SIGNING_DOMAIN.byteLength + payload.byteLength)
  out.set(RECORD_SIGNING_DOMAIN, 0)
  out.set(payload, RECORD_SIGNING_DOMAIN.byteLength)
  return out
}

interface Envelope {
  publicKey: Uint8Array
  signature: Uint8Array
  payload: Uint8Array
}

function parseEnvelope (bytes: Uint8Array): Envelope {
  if (!(bytes instanceof Uint8Array)) {
    throw new RecordMalformedError('signed record must be bytes')
  }
  if (bytes.byteLength > MAX_RECORD_BYTES) {
    throw new RecordMalformedError(`signed record is ${bytes.byteLength} bytes, limit ${MAX_RECORD_BYTES}`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let at = 0
  const need = (n: number, what: string): void => {
    if (at + n > bytes.byteLength) {
      throw new RecordMalformedError(`signed record truncated in ${what}`)
    }
  }
  const u8 = (what: string): number => { need(1, what); return view.getUint8(at++) }
  const u16 = (what: string): number => { need(2, what); at += 2; return view.getUint16(at - 2) }
  const take = (n: number, what: string): Uint8Array => { need(n, what); at += n; return bytes.subarray(at - n, at) }

  const version = u8('version')
  if (version !== ENVELOPE_VERSION) {
    throw new RecordMalformedError(`unknown record envelope version ${version}`)
  }
  const publicKey = take(u16('key length'), 'public key')
  const signature = take(u16('signature length'), 'signature')
  return { publicKey, signature, payload: bytes.subarray(at) }
}

function parsePayload (payload: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload))
  } catch (err) {
    throw new RecordMalformedError(`payload is not UTF-8 JSON: ${(err as Error).message}`)
  }
}

/** Checks every field and returns a record holding exactly the known fields. */
function validateRecord (value: unknown): PeerRecord {
  if (typeof value !== 'object' || value == null || Array.isArray(value)) {
    throw new RecordMalformedError('record must be an object')
  }
  const obj = value as Record<string, unknown>
  const record: PeerRecord = {
    peerId: text(obj, 'peerId', PEER_ID),
    modelId: text(obj, 'modelId', MODEL_ID),
    arch: text(obj, 'arch', ARCH),
    multiaddrs: multiaddrs(obj.multiaddrs),
    start: integer(obj, 'start', 0, MAX_BLOCKS - 1),
    end: integer(obj, 'end', 1, MAX_BLOCKS),
    state: peerState(obj.state),
    throughput: finite(obj, 'throughput', 0, MAX_THROUGHPUT),
    cacheTokensLeft: integer(obj, 'cacheTokensLeft', 0, Number.MAX_SAFE_INTEGER),
    dtype: text(obj, 'dtype', DTYPE),
    version: text(obj, 'version', VERSION),
    expiresAt: integer(obj, 'expiresAt', 0, Number.MAX_SAFE_INTEGER),
    seq: integer(obj, 'seq', 0, Number.MAX_SAFE_INTEGER)
  }
  // optional: older peers do not send them
  if (obj.sessions !== undefined) record.sessions = integer(obj, 'sessions', 0, MAX_SESSIONS)
  if (obj.maxSessions !== undefined) record.maxSessions = integer(obj, 'maxSessions', 0, MAX_SESSIONS)
  if (record.start >= record.end) {
    throw new RecordMalformedError(`empty span [${record.start}, ${record.end})`)
  }
  return record
}

function text (obj: Record<string, unknown>, field: string, pattern: RegExp): string {
  const value = obj[field]
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new RecordMalformedError(`${field} must be a string matching ${pattern}`)
  }
  return value
}

function integer (obj: Record<string, unknown>, field: string, min: number, max: number): number {
  const value = obj[field]
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new RecordMalformedError(`${field} must be an integer in [${min}, ${max}]`)
  }
  return value
}

/** `{ [field]: value }` when the field is present (and valid), `{}` when absent. */
function finite (obj: Record<string, unknown>, field: string, min: number, max: number): number {
  const value = obj[field]
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new RecordMalformedError(`${field} must be a number in [${min}, ${max}]`)
  }
  return value
}

function peerState (value: unknown): PeerState {
  const state = PEER_STATES.find((s) => s === value)
  if (state == null) {
    throw new RecordMalformedError(`state must be one of ${PEER_STATES.join(', ')}`)
  }
  return state
}

function multiaddrs (value: unknown): string[] {
  if (!Array.isArray(value) || value.length > MAX_MULTIADDRS) {
    throw new RecordMalformedError(`multiaddrs must be an array of at most ${MAX_MULTIADDRS}`)
  }
  return value.map((addr: unknown) => {
    if (typeof addr !== 'string' || addr.length > MAX_MULTIADDR_CHARS) {
      throw new RecordMalformedError(`multiaddr must be a string of at most ${MAX_MULTIADDR_CHARS} characters`)
    }
    try {
      multiaddr(addr)
    } catch {
      throw new RecordMalformedError(`invalid multiaddr ${JSON.stringify(addr.slice(0, 64))}`)
    }
    return addr
  })
}
