// The subset of JSON Schema that constrained decoding supports, parsed into a small tree:
// object (properties, required; no other keys are generated), array (items), string, number,
// integer, boolean, null, enum / const of those. Anything else that would change what is valid
// is refused with its path; annotations (title, description…) are ignored.

export type SchemaNode =
  | { type: 'any' }
  /** properties null: any keys, any values (response_format json_object) */
  | { type: 'object', properties: Map<string, SchemaNode> | null, required: string[] }
  | { type: 'array', items: SchemaNode }
  | { type: 'string' } | { type: 'number' } | { type: 'integer' } | { type: 'boolean' } | { type: 'null' }
  /** the allowed values, each as its JSON text */
  | { type: 'enum', literals: string[] }

export class SchemaError extends Error {
  override name = 'SchemaError'
}

/** A JSON object with any keys and values: response_format {"type":"json_object"}. */
export const ANY_OBJECT: SchemaNode = { type: 'object', properties: null, required: [] }

const ANNOTATIONS = new Set(['title', 'description', '$schema', '$id', '$comment', 'default', 'examples', 'strict', 'additionalProperties', 'type', 'properties', 'required', 'items', 'enum', 'const'])
const SCALARS = new Set(['string', 'number', 'integer', 'boolean', 'null'])

/** Parses a JSON Schema whose root is an object. */
export function parseJsonSchema (schema: unknown): SchemaNode {
  const node = parseNode(schema, '')
  if (node.type !== 'object') throw new SchemaError('the schema\'s root must be {"type":"object", …}')
  return node
}

function parseNode (v: unknown, at: string): SchemaNode {
  const where = at === '' ? 'the schema' : at
  if (v === true) return { type: 'any' }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new SchemaError(`${where} must be an object`)
  const s = v as Record<string, unknown>
  for (const k of Object.keys(s)) if (!ANNOTATIONS.has(k)) throw new SchemaError(`${at}${at === '' ? '' : '.'}${k} is not supported (supported: type, properties, required, items, enum, const)`)
  if (s.enum !== undefined || s.const !== undefined) {
    const values = s.const !== undefined ? [s.const] : s.enum
    if (!Array.isArray(values) || values.length === 0) throw new SchemaError(`${where}.enum must be a non-empty array`)
    for (const x of values) {
      if (x !== null && !['string', 'number', 'boolean'].includes(typeof x)) throw new SchemaError(`${where}.enum may hold strings, numbers, booleans and null only`)
      if (s.type !== undefined && !matchesType(x, s.type)) throw new SchemaError(`${where}.enum value ${JSON.stringify(x)} is not of type ${String(s.type)}`)
    }
    return { type: 'enum', literals: [...new Set(values.map((x) => JSON.stringify(x)))] }
  }
  if (s.type === undefined) return { type: 'any' }
  if (typeof s.type !== 'string') throw new SchemaError(`${where}.type must be one type name (type lists are not supported)`)
  if (s.type === 'object') return parseObject(s, at)
  if (s.type === 'array') return { type: 'array', items: s.items === undefined ? { type: 'any' } : parseNode(s.items, `${at}.items`) }
  if (SCALARS.has(s.type)) return { type: s.type as 'string' }
  throw new SchemaError(`${where}.type ${JSON.stringify(s.type)} is not supported`)
}

function parseObject (s: Record<string, unknown>, at: string): SchemaNode {
  if (s.additionalProperties !== undefined && s.additionalProperties !== false && s.properties !== undefined) {
    throw new SchemaError(`${at}.additionalProperties: only false is supported next to properties`)
  }
  if (s.properties === undefined) {
    if (s.required !== undefined) throw new SchemaError(`${at}.required needs properties`)
    return { ...ANY_OBJECT }
  }
  if (s.properties === null || typeof s.properties !== 'object' || Array.isArray(s.properties)) throw new SchemaError(`${at}.properties must be an object`)
  const properties = new Map<string, SchemaNode>()
  for (const [k, sub] of Object.entries(s.properties)) properties.set(k, parseNode(sub, `${at}.properties.${k}`))
  const required = s.required ?? []
  if (!Array.isArray(required) || !required.every((r) => typeof r === 'string' && properties.has(r))) {
    throw new SchemaError(`${at}.required must be an array of names listed in properties`)
  }
  return { type: 'object', properties, required: [...new Set(required as string[])] }
}

function matchesType (x: unknown, type: unknown): boolean {
  switch (type) {
    case 'string': return typeof x === 'string'
    case 'number': return typeof x === 'number'
    case 'integer': return Number.isInteger(x)
    case 'boolean': return typeof x === 'boolean'
    case 'null': return x === null
    default: return false
  }
}
