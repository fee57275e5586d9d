// Strict, typed reads of message fields out of an untrusted object (a parsed JSON header, or a
// message we are about to encode). Every failure is an InvalidFieldError naming the field path,
// the offending value and the rule; unknown fields are rejected (see the frame comment in
// messages.ts for why).
import { InvalidFieldError, LimitExceededError, describe, truncate } from './errors.ts'

const UINT32_MAX = 0xffff_ffff

/** Upper bound of one tensor dimension; `unit` names it in errors ("positions (maxPositions)"). */
export interface DimensionBound {
  limit: number
  unit: string
}

export class FieldReader {
  private readonly read = new Set<string>()

  private constructor (private readonly fields: Readonly<Record<string, unknown>>, private readonly path: string) {}

  /** A reader over `value`, which must be a plain object (not null, not an array). */
  static of (value: unknown, path: string): FieldReader {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new InvalidFieldError(path, `expected an object, got ${describe(value)}`)
    }
    return new FieldReader(value as Record<string, unknown>, path)
  }

  /** Integer in [min, 2^32 - 1]. */
  uint32 (key: string, min = 0): number {
    return checkUint32(this.required(key), this.pathOf(key), min)
  }

  /** String of at most `maxLength` UTF-16 units; empty only when `minLength` is 0. */
  string (key: string, maxLength: number, minLength = 1): string {
    return checkString(this.required(key), this.pathOf(key), maxLength, minLength)
  }

  oneOf<T extends string> (key: string, allowed: readonly T[]): T {
    const value = this.required(key)
    if (!allowed.includes(value as T)) {
      throw new InvalidFieldError(this.pathOf(key), `expected one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${describe(value)}`)
    }
    return value as T
  }

  /** Nested object; `undefined` when the field is absent and `optional` is set. */
  object (key: string): FieldReader
  object (key: string, optional: 'optional'): FieldReader | undefined
  object (key: string, optional?: 'optional'): FieldReader | undefined {
    if (optional !== undefined && !Object.hasOwn(this.fields, key)) return undefined
    return FieldReader.of(this.required(key), this.pathOf(key))
  }

  /** Array of at most `maxItems` non-empty strings of at most `maxLength` units each. */
  stringList (key: string, maxItems: number, maxLength: number): string[] {
    const path = this.pathOf(key)
    const items = checkArray(this.required(key), path)
    if (items.length > maxItems) throw new LimitExceededError(path, items.length, maxItems, 'items')
    return items.map((item, i) => checkString(item, `${path}[${i}]`, maxLength, 1))
  }

  /** Array of exactly `bounds.length` integers, each in [1, bounds[i].limit]. */
  dimensions (key: string, bounds: readonly DimensionBound[]): number[] {
    const path = this.pathOf(key)
    const dims = checkArray(this.required(key), path)
    if (dims.length !== bounds.length) throw new InvalidFieldError(path, `expected ${bounds.length} dimensions, got ${dims.length}`)
    return dims.map((dim, i) => {
      const value = checkUint32(dim, `${path}[${i}]`, 1)
      if (value > bounds[i].limit) throw new LimitExceededError(`${path}[${i}]`, value, bounds[i].limit, bounds[i].unit)
      return value
    })
  }

  /** Call after reading every known field: anything left over is an unknown field. */
  end (): void {
    for (const key of Object.keys(this.fields)) {
      if (!this.read.has(key)) throw new InvalidFieldError(this.pathOf(key), 'unknown field')
    }
  }

  private required (key: string): unknown {
    this.read.add(key)
    // hasOwn: inherited names such as "constructor" must read as missing, not as Object's own.
    if (!Object.hasOwn(this.fields, key) || this.fields[key] === undefined) {
      throw new InvalidFieldError(this.pathOf(key), 'missing')
    }
    return this.fields[key]
  }

  private pathOf (key: string): string {
    return `${this.path}.${truncate(key)}`
  }
}

function checkUint32 (value: unknown, path: string, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > UINT32_MAX) {
    throw new InvalidFieldError(path, `expected an integer in [${min}, ${UINT32_MAX}], got ${describe(value)}`)
  }
  return value
}

function checkString (value: unknown, path: string, maxLength: number, minLength: number): string {
  if (typeof value !== 'string') throw new InvalidFieldError(path, `expected a string, got ${describe(value)}`)
  if (value.length > maxLength) throw new LimitExceededError(path, value.length, maxLength, 'characters')
  if (value.length < minLength) throw new InvalidFieldError(path, minLength <= 1 ? 'must not be empty' : `must be at least ${minLength} characters, got ${value.length}`)
  return value
}

function checkArray (value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw new InvalidFieldError(path, `expected an array, got ${describe(value)}`)
  return value
}
