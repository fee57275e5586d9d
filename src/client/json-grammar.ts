// A byte-level pushdown automaton for JSON that matches a SchemaNode, with the exact number of
// bytes still needed to finish the document from any state. States are immutable (a linked
// stack of frozen frames), so a vocabulary trie can be walked from one state without copying.
// Output is compact: no whitespace outside strings. Numbers keep at most 15 integer digits,
// 15 fraction digits and 2 exponent digits, so every integer stays exact.
import type { SchemaNode } from './json-schema.ts'

type ObjectSchema = Extract<SchemaNode, { type: 'object' }>
type NumPhase = 'start' | 'minus' | 'zero' | 'int' | 'dot' | 'frac' | 'e' | 'esign' | 'exp'

type Frame =
  | { k: 'root', done: boolean }
  | { k: 'value', s: SchemaNode }
  /** literal texts (enum values, true/false/null) matched byte by byte; `c` holds those still possible */
  | { k: 'lit', c: Uint8Array[], i: number }
  /** inside a string: esc 1 after a backslash, hex: \u digits left, u8: UTF-8 continuation bytes left */
  | { k: 'str', esc: boolean, hex: number, u8: number }
  | { k: 'num', ph: NumPhase, int: boolean, d: number }
  /** schema'd object: ph = where we are; key: the property being written; kp: its bytes so far */
  | { k: 'obj', s: ObjectSchema, seen: readonly string[], ph: 'open' | 'comma' | 'key' | 'colon' | 'value' | 'after', key: string, kp: number }
  | { k: 'arr', items: SchemaNode, ph: 'open' | 'comma' | 'value' | 'after' }

export interface GrammarState { readonly f: Frame, readonly up: GrammarState | null }

const MAX_INT_DIGITS = 15
const MAX_FRAC_DIGITS = 15
const MAX_EXP_DIGITS = 2
const B = (ch: string): number => ch.charCodeAt(0)
const [QUOTE, BACKSLASH, COLON, COMMA, LBRACE, RBRACE, LBRACKET, RBRACKET, MINUS, PLUS, DOT, ZERO, NINE] =
  ['"', '\\', ':', ',', '{', '}', '[', ']', '-', '+', '.', '0', '9'].map(B)
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't'].map(B))
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)
const isDigit = (b: number): boolean => b >= ZERO && b <= NINE
const isHex = (b: number): boolean => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)

/** Encoded keys per object schema: each property name as its JSON string bytes. */
const keyCache = new WeakMap<ObjectSchema, Map<string, Uint8Array>>()
function encodedKeys (s: ObjectSchema): Map<string, Uint8Array> {
  let m = keyCache.get(s)
  if (m === undefined) {
    m = new Map([...(s.properties ?? new Map()).keys()].map((k) => [k, utf8(JSON.stringify(k))]))
    keyCache.set(s, m)
  }
  return m
}

const literalCache = new WeakMap<SchemaNode, Uint8Array[]>()
function literals (s: SchemaNode): Uint8Array[] {
  let l = literalCache.get(s)
  if (l === undefined) {
    l = (s.type === 'enum' ? s.literals : s.type === 'boolean' ? ['true', 'false'] : s.type === 'null' ? ['null'] : ['true', 'false', 'null']).map(utf8)
    literalCache.set(s, l)
  }
  return l
}
const ANY: SchemaNode = { type: 'any' }
const ANY_TRUE_FALSE_NULL: SchemaNode = { type: 'any' }

export function initialState (root: SchemaNode): GrammarState {
  return { f: { k: 'value', s: root }, up: { f: { k: 'root', done: false }, up: null } }
}

export function isComplete (st: GrammarState): boolean {
  return st.f.k === 'root' && st.f.done
}

/** The state after byte `b`, or null when `b` cannot come next. */
export function feed (st: GrammarState, b: number): GrammarState | null {
  const f = st.f
  const up = st.up
  switch (f.k) {
    case 'root': return null
    case 'value': return startValue(f.s, up!, b)
    case 'lit': {
      const next = f.c.filter((c) => c[f.i] === b)
      if (next.length > 0) {
        // a literal that can only end here is finished at once
        if (next.length === 1 && next[0].length === f.i + 1) return childDone(up!)
        return { f: { k: 'lit', c: next, i: f.i + 1 }, up }
      }
      if (f.c.some((c) => c.length === f.i)) { const p = childDone(up!); return p === null ? null : feed(p, b) }
      return null
    }
    case 'str':
      if (f.u8 > 0) return b >= 0x80 && b <= 0xbf ? { f: { ...f, u8: f.u8 - 1 }, up } : null
      if (f.hex > 0) return isHex(b) ? { f: { ...f, hex: f.hex - 1 }, up } : null
      if (f.esc) return ESCAPES.has(b) ? { f: { ...f, esc: false }, up } : b === B('u') ? { f: { ...f, esc: false, hex: 4 }, up } : null
      if (b === QUOTE) return childDone(up!)
      if (b === BACKSLASH) return { f: { ...f, esc: true }, up }
      if (b < 0x20) return null
      if (b < 0x80) return st
      if (b >= 0xc2 && b <= 0xdf) return { f: { ...f, u8: 1 }, up }
      if (b >= 0xe0 && b <= 0xef) return { f: { ...f, u8: 2 }, up }
      if (b >= 0xf0 && b <= 0xf4) return { f: { ...f, u8: 3 }, up }
      return null
    case 'num': {
      const next = numStep(f, b)
      if (next !== null) return { f: next, up }
      if (f.ph === 'zero' || f.ph === 'int' || f.ph === 'frac' || f.ph === 'exp') { const p = childDone(up!); return p === null ? null : feed(p, b) }
      return null
    }
    case 'obj': return objStep(f, up!, b)
    case 'arr':
      switch (f.ph) {
        case 'open':
          if (b === RBRACKET) return childDone(up!)
          return startValue(f.items, { f: { ...f, ph: 'value' }, up }, b)
        case 'comma': return startValue(f.items, { f: { ...f, ph: 'value' }, up }, b)
        case 'after':
          if (b === COMMA) return { f: { ...f, ph: 'comma' }, up }
          return b === RBRACKET ? childDone(up!) : null
        case 'value': return null
      }
  }
}

function startValue (s: SchemaNode, up: GrammarState, b: number): GrammarState | null {
  const type = s.type
  if (b === LBRACE && (type === 'object' || type === 'any')) {
    const obj = type === 'object' ? s : { type: 'object' as const, properties: null, required: [] }
    return { f: { k: 'obj', s: obj, seen: [], ph: 'open', key: '', kp: 0 }, up }
  }
  if (b === LBRACKET && (type === 'array' || type === 'any')) return { f: { k: 'arr', items: type === 'array' ? s.items : ANY, ph: 'open' }, up }
  if (b === QUOTE && (type === 'string' || type === 'any')) return { f: { k: 'str', esc: false, hex: 0, u8: 0 }, up }
  if ((type === 'number' || type === 'integer' || type === 'any') && (b === MINUS || isDigit(b))) {
    const ph = numStep({ k: 'num', ph: 'start', int: type === 'integer', d: 0 }, b)
    return ph === null ? null : { f: ph, up }
  }
  if (type === 'enum' || type === 'boolean' || type === 'null' || type === 'any') {
    return feed({ f: { k: 'lit', c: literals(type === 'any' ? ANY_TRUE_FALSE_NULL : s), i: 0 }, up }, b)
  }
  return null
}

function numStep (f: Extract<Frame, { k: 'num' }>, b: number): Extract<Frame, { k: 'num' }> | null {
  const to = (ph: NumPhase, d = 0): Extract<Frame, { k: 'num' }> => ({ k: 'num', ph, int: f.int, d })
  const digit = isDigit(b)
  const e = b === B('e') || b === B('E')
  switch (f.ph) {
    case 'start': return b === MINUS ? to('minus') : b === ZERO ? to('zero') : digit ? to('int', 1) : null
    case 'minus': return b === ZERO ? to('zero') : digit ? to('int', 1) : null
    case 'zero': return f.int ? null : b === DOT ? to('dot') : e ? to('e') : null
    case 'int': return digit ? (f.d < MAX_INT_DIGITS ? to('int', f.d + 1) : null) : f.int ? null : b === DOT ? to('dot') : e ? to('e') : null
    case 'dot': return digit ? to('frac', 1) : null
    case 'frac': return digit ? (f.d < MAX_FRAC_DIGITS ? to('frac', f.d + 1) : null) : e ? to('e') : null
    case 'e': return b === PLUS || b === MINUS ? to('esign') : digit ? to('exp', 1) : null
    case 'esign': return digit ? to('exp', 1) : null
    case 'exp': return digit && f.d < MAX_EXP_DIGITS ? to('exp', f.d + 1) : null
  }
}

function objStep (f: Extract<Frame, { k: 'obj' }>, up: GrammarState, b: number): GrammarState | null {
  const free = f.s.properties === null
  const self = (patch: Partial<Extract<Frame, { k: 'obj' }>>): GrammarState => ({ f: { ...f, ...patch }, up })
  switch (f.ph) {
    case 'open':
    case 'comma':
      if (b === RBRACE && f.ph === 'open' && f.s.required.length === 0) return childDone(up)
      if (b !== QUOTE) return null
      if (free) return { f: { k: 'str', esc: false, hex: 0, u8: 0 }, up: self({ ph: 'key' }) }
      return keyStep({ ...f, ph: 'key', key: '', kp: 0 }, up, b)
    case 'key': return free ? null : keyStep(f, up, b)
    case 'colon':
      if (b !== COLON) return null
      return { f: { k: 'value', s: free ? ANY : f.s.properties!.get(f.key)! }, up: self({ ph: 'value' }) }
    case 'after':
      if (b === COMMA) return free || unseen(f).length > 0 ? self({ ph: 'comma' }) : null
      if (b === RBRACE) return missing(f).length === 0 ? childDone(up) : null
      return null
    case 'value': return null
  }
}

/** Matches the bytes of a property name (with its quotes) against the names not used yet. */
function keyStep (f: Extract<Frame, { k: 'obj' }>, up: GrammarState, b: number): GrammarState | null {
  const keys = encodedKeys(f.s)
  for (const name of unseen(f)) {
    const enc = keys.get(name)!
    if (enc[f.kp] !== b || !prefixMatches(enc, keys.get(f.key), f.kp)) continue
    return { f: { ...f, ph: f.kp + 1 === enc.length ? 'colon' : 'key', key: name, kp: f.kp + 1 }, up }
  }
  return null
}

/** true when `enc` starts with the first `n` bytes of `current` (the key matched so far) */
function prefixMatches (enc: Uint8Array, current: Uint8Array | undefined, n: number): boolean {
  if (n === 0) return true
  if (current === undefined || enc.length < n) return false
  for (let i = 0; i < n; i++) if (enc[i] !== current[i]) return false
  return true
}

function unseen (f: Extract<Frame, { k: 'obj' }>): string[] {
  return [...f.s.properties!.keys()].filter((k) => !f.seen.includes(k))
}

function missing (f: Extract<Frame, { k: 'obj' }>): string[] {
  return f.s.required.filter((k) => !f.seen.includes(k))
}

/** The parent of a finished value moves on. */
function childDone (up: GrammarState): GrammarState | null {
  const f = up.f
  switch (f.k) {
    case 'root': return { f: { k: 'root', done: true }, up: up.up }
    case 'obj':
      if (f.ph === 'key') return { f: { ...f, ph: 'colon' }, up: up.up }
      if (f.ph === 'value') return { f: { ...f, ph: 'after', seen: f.s.properties === null ? f.seen : [...f.seen, f.key] }, up: up.up }
      return null
    case 'arr': return f.ph === 'value' ? { f: { ...f, ph: 'after' }, up: up.up } : null
    default: return null
  }
}

const minCache = new WeakMap<SchemaNode, number>()
/** bytes of the shortest value matching `s` */
export function minValueBytes (s: SchemaNode): number {
  let n = minCache.get(s)
  if (n !== undefined) return n
  switch (s.type) {
    case 'any': case 'number': case 'integer': n = 1; break
    case 'string': case 'array': n = 2; break
    case 'boolean': n = 4; break
    case 'null': n = 4; break
    case 'enum': n = Math.min(...literals(s).map((l) => l.length)); break
    case 'object': n = 1 + objectRest(s, s.required, true); break
  }
  minCache.set(s, n)
  return n
}

/** bytes to write the members `names` and the closing brace, after '{' (first) or after a member */
function objectRest (s: ObjectSchema, names: readonly string[], first: boolean): number {
  let n = 1
  const keys = encodedKeys(s)
  for (const k of names) n += keys.get(k)!.length + 1 + minValueBytes(s.properties!.get(k)!)
  return n + (names.length === 0 ? 0 : first ? names.length - 1 : names.length)
}

/** The fewest bytes that finish the document from `st` (0 when complete). */
export function bytesToFinish (st: GrammarState): number {
  return frameCost(st.f, true) + (st.up === null ? 0 : belowCost(st.up))
}

/** what the frames from `st` down need once their children are done; memoised, as states are shared */
const belowCache = new WeakMap<GrammarState, number>()
function belowCost (st: GrammarState): number {
  let n = belowCache.get(st)
  if (n === undefined) {
    n = frameCost(st.f, false) + (st.up === null ? 0 : belowCost(st.up))
    belowCache.set(st, n)
  }
  return n
}

/** bytes this frame still needs; for a frame below the top, counted from when its child is done */
function frameCost (f: Frame, top: boolean): number {
  switch (f.k) {
    case 'root': return 0
    case 'value': return minValueBytes(f.s)
    case 'lit': return Math.min(...f.c.map((c) => c.length - f.i))
    case 'str': return 1 + (f.esc ? 1 : 0) + f.hex + f.u8
    case 'num': return f.ph === 'start' || f.ph === 'minus' || f.ph === 'dot' || f.ph === 'e' || f.ph === 'esign' ? 1 : 0
    case 'arr':
      if (f.ph === 'comma') return minValueBytes(f.items) + 1
      return 1
    case 'obj': {
      if (f.s.properties === null) {
        // free object: a key string is its child while ph is 'key'
        if (f.ph === 'comma') return 5 // "":0}
        if (f.ph === 'key' || f.ph === 'colon') return 3 // :0}
        return 1
      }
      const rest = missing(f)
      switch (f.ph) {
        case 'open': return objectRest(f.s, rest, true)
        case 'after': return objectRest(f.s, rest, false)
        case 'value': return top ? 0 : objectRest(f.s, rest.filter((k) => k !== f.key), false)
        case 'colon': return 1 + minValueBytes(f.s.properties.get(f.key)!) + objectRest(f.s, rest.filter((k) => k !== f.key), false)
        case 'comma':
          if (rest.length > 0) return objectRest(f.s, rest, true)
          return 1 + Math.min(...unseen(f).map((k) => encodedKeys(f.s).get(k)!.length + 1 + minValueBytes(f.s.properties!.get(k)!)))
        case 'key': {
          const keys = encodedKeys(f.s)
          const current = keys.get(f.key)!
          let best = Infinity
          for (const k of unseen(f)) {
            const enc = keys.get(k)!
            if (!prefixMatches(enc, current, f.kp)) continue
            best = Math.min(best, enc.length - f.kp + 1 + minValueBytes(f.s.properties.get(k)!) + objectRest(f.s, rest.filter((r) => r !== k), false))
          }
          return best
        }
      }
    }
  }
}
