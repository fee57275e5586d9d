// Wire format of the strata session and info protocols. The transport delimits frames (a
// length-prefixed libp2p stream); one frame holds one message:
//
//   | version u8 | kind u8 | header_len u32 LE | header (header_len bytes) | payload (rest of frame) |
//
// version  WIRE_VERSION (1); any other value is refused (UnsupportedVersionError).
// kind     fixed id from MESSAGE_KIND_IDS; ids are never renumbered or reused (UnknownMessageKindError).
// header   compact UTF-8 JSON object with the message's small fields, `kind` excluded; `{}` when
//          there are none. Unknown fields are refused: a new field means a new WIRE_VERSION, so an
//          old peer fails loudly instead of ignoring something a newer one relies on.
// payload  step/result/push: the hidden states as raw little-endian f32 or f16 values, row-major
//          (batch, positions, hidden), exactly batch * positions * hidden * (4 | 2) bytes.
//          info: the info JSON document as UTF-8. Every other kind: empty.
//
//   kind          id  header                                                      payload
//   open           1  sessionId modelId start end maxLength wireDtype             -
//   opened         2  sessionId start end maxLength                               -
//   step           3  stepId position hidden{dtype shape}                         tensor
//   result         4  stepId position hidden{dtype shape}                         tensor
//   truncate       5  length                                                      -
//   truncated      6  length                                                      -
//   close          7  -                                                           -
//   error          8  code message                                                -
//   info_request   9  -                                                           -
//   info          10  -                                                           UTF-8 JSON
//   push_route    11  from?{peerId token} to?{peerId multiaddrs sessionId token}   -
//   push_routed   12  -                                                           -
//   push          13  sessionId token stepId position hidden{dtype shape}         tensor
//   pushed        14  stepId position                                             -
//   direct_request 15 sessionId key                                               -
//   direct_offer  16  port token                                                  -
//
// Server-to-server push (see src/routing/push-chain.ts): on its session stream the client sends
// each hop a `push_route`: `from` = accept `push` frames for this session from that peer, carrying
// that token; `to` = send every step's output to that peer's session instead of answering with a
// `result` (an absent field turns that direction off). A hop that forwards a step answers its
// client with a small `pushed` instead; `push` frames travel on their own stream
// (PUSH_PROTOCOL), opened by the forwarding hop to the next one.
//
// Direct data path (see src/protocol/direct.ts): on its own stream (DIRECT_PROTOCOL), the client
// sends a `direct_request` naming one of its open sessions on that peer and a fresh AES-256-GCM
// key (base64); the peer answers with a `direct_offer`: the TCP port of its direct listener and a
// one-time token for the socket that will carry that session's frames. A peer without the fast
// path does not speak the protocol, so an old or `--no-direct` peer is never sent these kinds.
//
// Decoding never trusts a size before checking it against the bytes actually present and the
// receiver's FrameLimits, so no frame can make the decoder allocate more than ~2x its own length.
import {
  describe,
  FrameTooLargeError,
  InvalidFieldError,
  LimitExceededError,
  MalformedFrameError,
  UnknownMessageKindError,
  UnsupportedVersionError
} from './errors.ts'
import { FieldReader } from './fields.ts'
import { WIRE_DTYPES, bytesPerElement, decodeTensorData, writeTensorData, type WireDtype, type WireTensor } from './tensor.ts'

export const INFERENCE_PROTOCOL = '/strata/inference/1.0.0'
export const INFO_PROTOCOL = '/strata/info/1.0.0'
/** hop → next hop: step outputs pushed straight into the next hop's session */
export const PUSH_PROTOCOL = '/strata/push/1.0.0'
/** client → peer: a direct data path for one of its sessions (direct.ts) */
export const DIRECT_PROTOCOL = '/strata/direct/1.0.0'
export const WIRE_VERSION = 1

/** version u8 + kind u8 + header_len u32 */
export const FRAME_PRELUDE_BYTES = 6

export const MAX_SESSION_ID_LENGTH = 64
export const MAX_MODEL_ID_LENGTH = 128
/** libp2p peer ids are ~52 characters in base58; leave room for other key types. */
export const MAX_PEER_ID_LENGTH = 128
export const MAX_MULTIADDRS = 16
export const MAX_MULTIADDR_LENGTH = 512
export const MAX_ERROR_MESSAGE_LENGTH = 1024
export const MAX_INFO_JSON_BYTES = 64 * 1024
/** push tokens: random, chosen by the client; at least 16 characters so they cannot be guessed */
export const MIN_PUSH_TOKEN_LENGTH = 16
export const MAX_PUSH_TOKEN_LENGTH = 128

export const ERROR_CODES = ['busy', 'draining', 'bad_request', 'desync', 'too_long', 'internal', 'wrong_model', 'timeout', 'push_failed', 'forbidden'] as const
/** Why a peer refused or ended a session; sent in `error` messages. */
export type ErrorCode = typeof ERROR_CODES[number]

/** Client → server: start a session on blocks [start, end) of `modelId`. */
export interface OpenMessage {
  kind: 'open'
  /** chosen by the client, unique per session; at most 64 characters */
  sessionId: string
  /** at most 128 characters */
  modelId: string
  /** first block of the span */
  start: number
  /** one past the last block of the span */
  end: number
  /** most positions the session's KV cache will ever hold */
  maxLength: number
  /** dtype the client will use for hidden states in `step` */
  wireDtype: WireDtype
}

/** Server → client: the session is open and its KV cache reserved. */
export interface OpenedMessage {
  kind: 'opened'
  sessionId: string
  start: number
  end: number
  maxLength: number
}

/** Where a hop pushes its outputs: the next hop's peer and session, and the token that session accepts. */
export interface PushTarget {
  peerId: string
  multiaddrs: string[]
  sessionId: string
  token: string
}

/** Whom a hop accepts pushed inputs from: the previous hop's peer, with the token the client gave both. */
export interface PushSource {
  peerId: string
  token: string
}

/** Client → server: run the span on new positions (one for decoding, many for prefill or speculation). */
export interface StepMessage {
  kind: 'step'
  /** uint32, echoed in the matching `result` */
  stepId: number
  /** positions the server must already hold before this step; a mismatch is a desync */
  position: number
  /** input hidden states, shape (batch, new positions, hidden) */
  hidden: WireTensor
}

/** Server → client: the span's output for a step. */
export interface ResultMessage {
  kind: 'result'
  stepId: number
  /** positions held after the step */
  position: number
  /** output hidden states, same shape as the step's input */
  hidden: WireTensor
}

/** Client → server: roll the KV cache back to its first `length` positions (rejected speculation). */
export interface TruncateMessage {
  kind: 'truncate'
  length: number
}

/** Server → client: the KV cache now holds `length` positions. */
export interface TruncatedMessage {
  kind: 'truncated'
  length: number
}

/** Client → server: end the session and free its KV cache. */
export interface CloseMessage {
  kind: 'close'
}

/** Either way: the session cannot go on (or could not start); the stream closes after it. */
export interface ErrorMessage {
  kind: 'error'
  code: ErrorCode
  /** human-readable detail, at most 1024 characters */
  message: string
}

/** Info protocol, client → server. */
export interface InfoRequestMessage {
  kind: 'info_request'
}

/** Info protocol, server → client: a JSON document of at most 64 KiB (UTF-8). */
export interface InfoMessage {
  kind: 'info'
  json: string
}

/** Client → server: where this session's inputs may be pushed from and its outputs pushed to. */
export interface PushRouteMessage {
  kind: 'push_route'
  /** accept `push` frames from this peer with this token (absent: accept none) */
  from?: PushSource
  /** push every step's output there (absent: answer the client with `result`) */
  to?: PushTarget
}

/** Server → client: the push route is in place (the link to `to` is open). */
export interface PushRoutedMessage {
  kind: 'push_routed'
}

/** Hop → next hop, on a PUSH_PROTOCOL stream: a step's input for the next hop's session. */
export interface PushMessage {
  kind: 'push'
  /** the receiving hop's session id */
  sessionId: string
  /** the token the client gave the receiving session for pushes from this peer */
  token: string
  /** the client's step id, carried along so the last hop's `result` answers it */
  stepId: number
  /** positions the receiving hop must already hold */
  position: number
  hidden: WireTensor
}

/** Server → client: a step's output was pushed to the next hop (positions held after it). */
export interface PushedMessage {
  kind: 'pushed'
  stepId: number
  position: number
}

/** Client → server, on a DIRECT_PROTOCOL stream: a direct socket for session `sessionId`, sealed with `key`. */
export interface DirectRequestMessage {
  kind: 'direct_request'
  sessionId: string
  /** 32 random bytes, base64 (44 characters) */
  key: string
}

/** Server → client: dial this TCP port (on the host of the libp2p connection) and present `token`. */
export interface DirectOfferMessage {
  kind: 'direct_offer'
  port: number
  /** 16 random bytes, base64 (24 characters); valid once, for a few seconds */
  token: string
}

export type Message =
  | OpenMessage | OpenedMessage | StepMessage | ResultMessage | TruncateMessage | TruncatedMessage
  | CloseMessage | ErrorMessage | InfoRequestMessage | InfoMessage
  | PushRouteMessage | PushRoutedMessage | PushMessage | PushedMessage
  | DirectRequestMessage | DirectOfferMessage

export type MessageKind = Message['kind']
export type MessageOf<K extends MessageKind> = Extract<Message, { kind: K }>

/** Wire ids of the message kinds. Never renumber or reuse one; add new kinds at the end. */
export const MESSAGE_KIND_IDS: Readonly<Record<MessageKind, number>> = {
  open: 1,
  opened: 2,
  step: 3,
  result: 4,
  truncate: 5,
  truncated: 6,
  close: 7,
  error: 8,
  info_request: 9,
  info: 10,
  push_route: 11,
  push_routed: 12,
  push: 13,
  pushed: 14,
  direct_request: 15,
  direct_offer: 16
}

const KIND_BY_ID = new Map(Object.entries(MESSAGE_KIND_IDS).map(([kind, id]) => [id, kind as MessageKind]))

/** Receiver-side size limits; a frame beyond any of them is refused before it is decoded. */
export interface FrameLimits {
  /** whole frame, bytes; default 256 MiB */
  maxFrameBytes: number
  /** JSON header, bytes; default 16 KiB */
  maxHeaderBytes: number
  /** positions per step or result (tensor shape[1]); default 8192 */
  maxPositions: number
  /** hidden size (tensor shape[2]); default 65536 */
  maxHidden: number
  /** batch size (tensor shape[0]); default 64 */
  maxBatch: number
}

export const DEFAULT_FRAME_LIMITS: Readonly<FrameLimits> = {
  maxFrameBytes: 256 * 1024 * 1024,
  maxHeaderBytes: 16 * 1024,
  maxPositions: 8192,
  maxHidden: 65536,
  maxBatch: 64
}

// The encoder checks protocol rules, not a receiver's limits: those are the receiver's policy.
const NO_LIMITS: Readonly<FrameLimits> = {
  maxFrameBytes: Infinity,
  maxHeaderBytes: Infinity,
  maxPositions: Infinity,
  maxHidden: Infinity,
  maxBatch: Infinity
}

/** Serialises `msg` into one frame. Throws InvalidFieldError (or a subclass) if `msg` is not valid. */
export function encodeMessage (msg: Message): Uint8Array {
  const codec = codecOf(msg.kind)
  const fields = codec.toHeader(msg)
  // Check our own message exactly as a receiver will, so a bad message fails here with a clear
  // error instead of getting the stream closed by the other side.
  const header = readHeader(codec, fields, msg.kind, NO_LIMITS)
  const payload = codec.toPayload(msg, header)
  const headerBytes = UTF8_ENCODER.encode(JSON.stringify(fields))

  const frame = new Uint8Array(FRAME_PRELUDE_BYTES + headerBytes.length + payload.byteLength)
  frame[0] = WIRE_VERSION
  frame[1] = MESSAGE_KIND_IDS[msg.kind]
  new DataView(frame.buffer).setUint32(2, headerBytes.length, true)
  frame.set(headerBytes, FRAME_PRELUDE_BYTES)
  payload.write(frame.subarray(FRAME_PRELUDE_BYTES + headerBytes.length))
  return frame
}

/**
 * Parses and validates one frame. `bytes` may be a view at any offset of a larger buffer; the
 * result never aliases it. Throws a ProtocolError subclass for anything that is not a valid
 * message under `limits` (merged over DEFAULT_FRAME_LIMITS).
 */
export function decodeMessage (bytes: Uint8Array, limits: Partial<FrameLimits> = {}): Message {
  const resolved = resolveLimits(limits)
  if (bytes.length > resolved.maxFrameBytes) throw new FrameTooLargeError('frame', bytes.length, resolved.maxFrameBytes)
  if (bytes.length < FRAME_PRELUDE_BYTES) {
    throw new MalformedFrameError(`frame is ${bytes.length} bytes, shorter than the ${FRAME_PRELUDE_BYTES}-byte prelude`)
  }
  if (bytes[0] !== WIRE_VERSION) throw new UnsupportedVersionError(bytes[0], WIRE_VERSION)
  const kind = KIND_BY_ID.get(bytes[1])
  if (kind === undefined) throw new UnknownMessageKindError(bytes[1])

  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(2, true)
  if (headerLength > resolved.maxHeaderBytes) throw new FrameTooLargeError('header', headerLength, resolved.maxHeaderBytes)
  const headerEnd = FRAME_PRELUDE_BYTES + headerLength
  if (headerEnd > bytes.length) {
    throw new MalformedFrameError(`header_len ${headerLength} runs past the end of the ${bytes.length}-byte frame`)
  }

  const codec = codecOf(kind)
  const header = readHeader(codec, parseJsonHeader(bytes.subarray(FRAME_PRELUDE_BYTES, headerEnd)), kind, resolved)
  return codec.fromWire(header, bytes.subarray(headerEnd))
}

function resolveLimits (limits: Partial<FrameLimits>): FrameLimits {
  // `??` per field rather than a spread, so `{ maxBatch: undefined }` keeps the default.
  return {
    maxFrameBytes: limits.maxFrameBytes ?? DEFAULT_FRAME_LIMITS.maxFrameBytes,
    maxHeaderBytes: limits.maxHeaderBytes ?? DEFAULT_FRAME_LIMITS.maxHeaderBytes,
    maxPositions: limits.maxPositions ?? DEFAULT_FRAME_LIMITS.maxPositions,
    maxHidden: limits.maxHidden ?? DEFAULT_FRAME_LIMITS.maxHidden,
    maxBatch: limits.maxBatch ?? DEFAULT_FRAME_LIMITS.maxBatch
  }
}

const UTF8_ENCODER = new TextEncoder()
const UTF8_DECODER = new TextDecoder('utf-8', { fatal: true })

/** Strict UTF-8 then JSON: a header is text, so invalid bytes are an error, not U+FFFD. */
function parseJsonHeader (bytes: Uint8Array): unknown {
  return parseJson(decodeUtf8(bytes, 'header'), 'header')
}

function decodeUtf8 (bytes: Uint8Array, what: string): string {
  try {
    return UTF8_DECODER.decode(bytes)
  } catch {
    throw new MalformedFrameError(`${what} is not valid UTF-8`)
  }
}

function parseJson (text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new MalformedFrameError(`${what} is not valid JSON`)
  }
}

/** Runs the kind's field checks over `fields`; whatever they leave unread is an unknown field. */
function readHeader (codec: AnyCodec, fields: unknown, kind: MessageKind, limits: FrameLimits): object {
  const reader = FieldReader.of(fields, kind)
  const header = codec.readHeader(reader, limits)
  reader.end()
  return header
}

// ---- per-kind codecs ----

/** Bytes that follow the header. */
interface Payload {
  byteLength: number
  write (out: Uint8Array): void
}

const NO_PAYLOAD: Payload = { byteLength: 0, write: () => {} }

/**
 * How one kind maps to header + payload. `H` is the validated header. Method syntax on purpose:
 * it lets the table below hold codecs of different `H` under one type.
 */
interface Codec<M extends Message, H extends object> {
  /** Header fields of an outgoing message, not yet validated. */
  toHeader (msg: M): object
  /** Validates header fields from an untrusted object (a received header, or `toHeader` output). */
  readHeader (fields: FieldReader, limits: FrameLimits): H
  /** Payload of an outgoing message, checked against its validated header. */
  toPayload (msg: M, header: H): Payload
  /** Rebuilds a received message from its validated header and raw payload. */
  fromWire (header: H, payload: Uint8Array): M
}

type AnyCodec = Codec<Message, object>

const CODECS: { readonly [K in MessageKind]: Codec<MessageOf<K>, object> } = {
  open: headerOnly('open', (r) => {
    const sessionId = r.string('sessionId', MAX_SESSION_ID_LENGTH)
    const modelId = r.string('modelId', MAX_MODEL_ID_LENGTH)
    const { start, end } = readSpan(r, 'open')
    const maxLength = r.uint32('maxLength', 1)
    const wireDtype = r.oneOf('wireDtype', WIRE_DTYPES)
    return { sessionId, modelId, start, end, maxLength, wireDtype }
  }),
  opened: headerOnly('opened', (r) => {
    const sessionId = r.string('sessionId', MAX_SESSION_ID_LENGTH)
    const { start, end } = readSpan(r, 'opened')
    const maxLength = r.uint32('maxLength', 1)
    return { sessionId, start, end, maxLength }
  }),
  step: stepCodec(),
  result: resultCodec(),
  truncate: headerOnly('truncate', (r) => ({ length: r.uint32('length') })),
  truncated: headerOnly('truncated', (r) => ({ length: r.uint32('length') })),
  close: headerOnly('close', () => ({})),
  error: headerOnly('error', (r) => ({
    code: r.oneOf('code', ERROR_CODES),
    message: r.string('message', MAX_ERROR_MESSAGE_LENGTH, 0)
  })),
  info_request: headerOnly('info_request', () => ({})),
  info: infoCodec(),
  push_route: headerOnly('push_route', (r) => {
    const fields: HeaderOnlyFields<'push_route'> = {}
    const from = r.object('from', 'optional')
    if (from !== undefined) fields.from = readPushSource(from)
    const to = r.object('to', 'optional')
    if (to !== undefined) fields.to = readPushTarget(to)
    return fields
  }),
  push_routed: headerOnly('push_routed', () => ({})),
  push: pushCodec(),
  pushed: headerOnly('pushed', (r) => ({ stepId: r.uint32('stepId'), position: r.uint32('position', 1) })),
  direct_request: headerOnly('direct_request', (r) => ({
    sessionId: r.string('sessionId', MAX_SESSION_ID_LENGTH),
    key: readBase64(r, 'direct_request', 'key', DIRECT_KEY_BYTES)
  })),
  direct_offer: headerOnly('direct_offer', (r) => {
    const port = r.uint32('port', 1)
    if (port > 65535) throw new InvalidFieldError('direct_offer.port', `expected a TCP port, got ${port}`)
    return { port, token: readBase64(r, 'direct_offer', 'token', DIRECT_TOKEN_BYTES) }
  })
}

/** bytes of a direct path's AES-256-GCM key */
export const DIRECT_KEY_BYTES = 32
/** bytes of a direct path's one-time socket token */
export const DIRECT_TOKEN_BYTES = 16

/** A base64 string encoding exactly `bytes` bytes. */
function readBase64 (r: FieldReader, kind: MessageKind, key: string, bytes: number): string {
  const length = 4 * Math.ceil(bytes / 3)
  const value = r.string(key, length, length)
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value) || Buffer.from(value, 'base64').length !== bytes) {
    throw new InvalidFieldError(`${kind}.${key}`, `expected ${bytes} bytes in base64`)
  }
  return value
}

function codecOf (kind: unknown): AnyCodec {
  // hasOwn: a kind such as "constructor" or "__proto__" must not find something on the prototype.
  if (typeof kind !== 'string' || !Object.hasOwn(CODECS, kind)) throw new UnknownMessageKindError(kind)
  return CODECS[kind as MessageKind] as AnyCodec
}

type HeaderOnlyFields<K extends MessageKind> = Omit<MessageOf<K>, 'kind'>

/** A kind whose fields all travel in the header: header = the message minus `kind`, no payload. */
function headerOnly<K extends MessageKind> (
  kind: K,
  read: (fields: FieldReader) => HeaderOnlyFields<K>
): Codec<MessageOf<K>, HeaderOnlyFields<K>> {
  return {
    toHeader: ({ kind: _kind, ...fields }) => fields,
    readHeader: (fields) => read(fields),
    toPayload: () => NO_PAYLOAD,
    fromWire: (fields, payload) => {
      expectNoPayload(kind, payload)
      return { kind, ...fields } as MessageOf<K>
    }
  }
}

function expectNoPayload (kind: MessageKind, payload: Uint8Array): void {
  if (payload.length !== 0) throw new MalformedFrameError(`${kind} frame has ${payload.length} trailing bytes after its header`)
}

function readSpan (r: FieldReader, kind: MessageKind): { start: number, end: number } {
  const start = r.uint32('start')
  const end = r.uint32('end', 1)
  if (end <= start) throw new InvalidFieldError(`${kind}.end`, `block span [${start}, ${end}) is empty (end is exclusive)`)
  return { start, end }
}

// step / result: small fields in the header, the tensor's values in the payload.

type TensorHeader = Omit<WireTensor, 'data'>
type StepHeader = Omit<StepMessage, 'kind' | 'hidden'> & { hidden: TensorHeader }
type PushHeader = Omit<PushMessage, 'kind' | 'hidden'> & { hidden: TensorHeader }
type ResultHeader = Omit<ResultMessage, 'kind' | 'hidden'> & { hidden: TensorHeader }

function stepCodec (): Codec<StepMessage, StepHeader> {
  return {
    toHeader: (msg) => ({ stepId: msg.stepId, position: msg.position, hidden: tensorHeaderOf(msg.hidden) }),
    readHeader: (r, limits) => ({ stepId: r.uint32('stepId'), position: r.uint32('position'), hidden: readTensorHeader(r, limits) }),
    toPayload: (msg, header) => tensorPayload(msg.hidden.data, header.hidden, 'step'),
    fromWire: (header, payload) => ({ kind: 'step', ...header, hidden: readTensor(header.hidden, payload, 'step') })
  }
}

function pushCodec (): Codec<PushMessage, PushHeader> {
  return {
    toHeader: (msg) => ({ sessionId: msg.sessionId, token: msg.token, stepId: msg.stepId, position: msg.position, hidden: tensorHeaderOf(msg.hidden) }),
    readHeader: (r, limits) => ({
      sessionId: r.string('sessionId', MAX_SESSION_ID_LENGTH),
      token: readToken(r),
      stepId: r.uint32('stepId'),
      position: r.uint32('position'),
      hidden: readTensorHeader(r, limits)
    }),
    toPayload: (msg, header) => tensorPayload(msg.hidden.data, header.hidden, 'push'),
    fromWire: (header, payload) => ({ kind: 'push', ...header, hidden: readTensor(header.hidden, payload, 'push') })
  }
}

function resultCodec (): Codec<ResultMessage, ResultHeader> {
  return {
    toHeader: (msg) => ({ stepId: msg.stepId, position: msg.position, hidden: tensorHeaderOf(msg.hidden) }),
    readHeader: (r, limits) => {
      const stepId = r.uint32('stepId')
      const position = r.uint32('position')
      const hidden = readTensorHeader(r, limits)
      // The positions just computed are part of what the server holds afterwards.
      if (position < hidden.shape[1]) {
        throw new InvalidFieldError('result.position', `${position} is less than the ${hidden.shape[1]} positions in this result`)
      }
      return { stepId, position, hidden }
    },
    toPayload: (msg, header) => tensorPayload(msg.hidden.data, header.hidden, 'result'),
    fromWire: (header, payload) => ({ kind: 'result', ...header, hidden: readTensor(header.hidden, payload, 'result') })
  }
}

function tensorHeaderOf (tensor: WireTensor): object {
  // Read defensively: a caller's malformed tensor must become an InvalidFieldError, not a TypeError.
  return typeof tensor === 'object' && tensor !== null ? { dtype: tensor.dtype, shape: tensor.shape } : tensor
}

function readTensorHeader (r: FieldReader, limits: FrameLimits): TensorHeader {
  const fields = r.object('hidden')
  const dtype = fields.oneOf('dtype', WIRE_DTYPES)
  const [batch, positions, hidden] = fields.dimensions('shape', [
    { limit: limits.maxBatch, unit: 'rows (maxBatch)' },
    { limit: limits.maxPositions, unit: 'positions (maxPositions)' },
    { limit: limits.maxHidden, unit: 'hidden units (maxHidden)' }
  ])
  fields.end()
  return { dtype, shape: [batch, positions, hidden] }
}

function readPushTarget (r: FieldReader): PushTarget {
  const target = {
    peerId: r.string('peerId', MAX_PEER_ID_LENGTH),
    multiaddrs: r.stringList('multiaddrs', MAX_MULTIADDRS, MAX_MULTIADDR_LENGTH),
    sessionId: r.string('sessionId', MAX_SESSION_ID_LENGTH),
    token: readToken(r)
  }
  r.end()
  return target
}

function readPushSource (r: FieldReader): PushSource {
  const source = { peerId: r.string('peerId', MAX_PEER_ID_LENGTH), token: readToken(r) }
  r.end()
  return source
}

function readToken (r: FieldReader): string {
  return r.string('token', MAX_PUSH_TOKEN_LENGTH, MIN_PUSH_TOKEN_LENGTH)
}

function elementCount (shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

function tensorPayload (data: unknown, header: TensorHeader, kind: MessageKind): Payload {
  const field = `${kind}.hidden.data`
  if (!(data instanceof Float32Array)) throw new InvalidFieldError(field, 'expected a Float32Array')
  const count = elementCount(header.shape)
  if (data.length !== count) {
    throw new InvalidFieldError(field, `has ${data.length} values, shape [${header.shape.join(', ')}] needs ${count}`)
  }
  return {
    byteLength: count * bytesPerElement(header.dtype),
    write: (out) => writeTensorData(data, header.dtype, out)
  }
}

function readTensor (header: TensorHeader, payload: Uint8Array, kind: MessageKind): WireTensor {
  // Shape dims are capped by the limits, so this product is exact; the payload length is what
  // bounds the allocation below.
  const expected = elementCount(header.shape) * bytesPerElement(header.dtype)
  if (payload.length !== expected) {
    throw new MalformedFrameError(
      `${kind} payload is ${payload.length} bytes, shape [${header.shape.join(', ')}] as ${header.dtype} needs ${expected}`
    )
  }
  return { dtype: header.dtype, shape: header.shape, data: decodeTensorData(payload, header.dtype) }
}

// info: the JSON document travels as the payload, so it may exceed the header limit.

function infoCodec (): Codec<InfoMessage, object> {
  return {
    toHeader: () => ({}),
    readHeader: () => ({}),
    toPayload: (msg) => {
      const bytes = encodeInfoJson(msg.json)
      return { byteLength: bytes.length, write: (out) => out.set(bytes) }
    },
    fromWire: (_header, payload) => ({ kind: 'info', json: decodeInfoJson(payload) })
  }
}

function encodeInfoJson (json: unknown): Uint8Array {
  if (typeof json !== 'string') throw new InvalidFieldError('info.json', `expected a string, got ${describe(json)}`)
  // UTF-8 cannot carry a lone surrogate (TextEncoder would silently swap in U+FFFD).
  if (/\p{Surrogate}/u.test(json)) throw new InvalidFieldError('info.json', 'contains an unpaired surrogate')
  checkJson(json)
  const bytes = UTF8_ENCODER.encode(json)
  checkInfoSize(bytes.length)
  return bytes
}

function decodeInfoJson (payload: Uint8Array): string {
  checkInfoSize(payload.length)
  const json = decodeUtf8(payload, 'info payload')
  parseJson(json, 'info payload')
  return json
}

function checkJson (json: string): void {
  try {
    JSON.parse(json)
  } catch {
    throw new InvalidFieldError('info.json', 'is not valid JSON')
  }
}

function checkInfoSize (bytes: number): void {
  if (bytes > MAX_INFO_JSON_BYTES) throw new LimitExceededError('info.json', bytes, MAX_INFO_JSON_BYTES, 'bytes')
}
