// Errors raised while encoding or decoding wire frames. A peer answers any of them by sending an
// `error` message (when it still can) and closing that one stream; no other session is touched.

/** Base class: a frame or message breaks the wire protocol. `code` is stable, for logs and metrics. */
export class ProtocolError extends Error {
  override name = 'ProtocolError'
  constructor (readonly code: string, message: string) {
    super(message)
  }
}

/** The frame, or its header, is bigger than the receiver's `FrameLimits` allow. */
export class FrameTooLargeError extends ProtocolError {
  override name = 'FrameTooLargeError'
  constructor (readonly part: 'frame' | 'header', readonly bytes: number, readonly limit: number) {
    super('frame_too_large', `${part} is ${bytes} bytes, limit is ${limit} bytes`)
  }
}

/** The bytes do not form a frame: truncated, bad UTF-8/JSON header, payload of the wrong size. */
export class MalformedFrameError extends ProtocolError {
  override name = 'MalformedFrameError'
  constructor (message: string) {
    super('malformed_frame', message)
  }
}

/** The frame was written for another wire version than ours. */
export class UnsupportedVersionError extends ProtocolError {
  override name = 'UnsupportedVersionError'
  constructor (readonly version: number, readonly supported: number) {
    super('unsupported_version', `wire version ${version} is not supported (this build speaks version ${supported})`)
  }
}

/** The frame's kind byte names no message kind we know. */
export class UnknownMessageKindError extends ProtocolError {
  override name = 'UnknownMessageKindError'
  /** `kind`: the id byte of a received frame, or the `kind` of a message handed to the encoder */
  constructor (readonly kind: unknown) {
    super('unknown_message_kind', `unknown message kind ${describe(kind)}`)
  }
}

/**
 * A message field is missing, of the wrong type, out of range, or unexpected. Raised by the
 * decoder for what arrives and by the encoder for what we are about to send.
 */
export class InvalidFieldError extends ProtocolError {
  override name = 'InvalidFieldError'
  constructor (readonly field: string, problem: string, code = 'invalid_field') {
    super(code, `${field}: ${problem}`)
  }
}

/**
 * A field is well formed but larger than a limit (string length, positions per step, hidden
 * size…). Kept apart so a peer can answer `too_long` instead of `bad_request`.
 */
export class LimitExceededError extends InvalidFieldError {
  override name = 'LimitExceededError'
  /** `unit` completes "N is over the limit of L …", e.g. "characters". */
  constructor (field: string, readonly value: number, readonly limit: number, unit: string) {
    super(field, `${value} is over the limit of ${limit} ${unit}`, 'limit_exceeded')
  }
}

/** A short, safe rendering of an untrusted value for error messages. */
export function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return `an array of ${value.length} items`
  switch (typeof value) {
    case 'string': return JSON.stringify(truncate(value))
    case 'number': return String(value)
    case 'object': return 'an object'
    default: return typeof value
  }
}

/** Attacker-controlled text goes into error messages and logs: keep it short. */
export function truncate (text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text
}
