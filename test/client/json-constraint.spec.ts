// Constrained JSON decoding on a real tokenizer vocabulary: random walks through the token mask
// (the worst case: a model whose choices are arbitrary) always end in a document that parses and
// matches the schema, within the token budget, down to the smallest budget the schema allows.
import assert from 'node:assert/strict'
import { JsonConstraint, VocabularyTrie } from '../../src/client/json-constraint.ts'
import { ANY_OBJECT, parseJsonSchema, SchemaError, type SchemaNode } from '../../src/client/json-schema.ts'
import { tokenLogprob } from '../../src/client/logprobs.ts'
import { TokenVocabulary } from '../../src/shards/vocabulary.ts'
import { tinyModel, shapes } from '../helpers/models.ts'

const SCHEMAS = {
  person: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' }, score: { type: 'number' }, colour: { enum: ['red', 'green', 'blü', 7, null] }, tags: { type: 'array', items: { type: 'boolean' } }, nested: { type: 'object', properties: { x: { const: 'x' } }, required: ['x'] } }, required: ['name', 'age', 'nested'] },
  empty: { type: 'object', properties: {} },
  free: { type: 'object' }
}

function validates (v: unknown, s: any): boolean {
  if (s.const !== undefined) return v === s.const
  if (s.enum !== undefined) return s.enum.includes(v)
  switch (s.type) {
    case 'object':
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
      if (s.properties === undefined) return true
      return (s.required ?? []).every((k: string) => k in v) && Object.entries(v).every(([k, x]) => k in s.properties && validates(x, s.properties[k]))
    case 'array': return Array.isArray(v) && v.every((x) => validates(x, s.items))
    case 'string': return typeof v === 'string'
    case 'number': return typeof v === 'number' && Number.isFinite(v)
    case 'integer': return Number.isSafeInteger(v)
    case 'boolean': return typeof v === 'boolean'
    default: return false
  }
}

describe('client: JSON-constrained decoding', function () {
  const dir = tinyModel('gqa', shapes.gqa)
  const vocabulary = TokenVocabulary.load(dir, shapes.gqa.vocab)!
  const trie = new VocabularyTrie(vocabulary)
  let seed = 12345
  const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32 }

  /** samples uniformly among the allowed tokens until complete; returns the text and token count */
  function walk (schema: SchemaNode, budget: number): { text: string, tokens: number, complete: boolean } {
    const c = new JsonConstraint(trie, schema)
    const bytes: number[] = []
    let tokens = 0
    for (; tokens < budget && !c.complete; tokens++) {
      const mask = c.allowed(budget - tokens)
      const ids = [...mask.keys()].filter((t) => mask[t] === 1)
      assert.ok(ids.length > 0, 'the mask is never empty')
      const t = ids[Math.floor(rand() * ids.length)]
      c.accept(t)
      bytes.push(...vocabulary.bytes(t)!)
    }
    return { text: Buffer.from(bytes).toString('utf8'), tokens, complete: c.complete }
  }

  for (const [name, raw] of Object.entries(SCHEMAS)) {
    it(`random walks end in valid JSON for the ${name} schema, within every budget from the minimum up`, function () {
      const schema = name === 'free' ? ANY_OBJECT : parseJsonSchema(raw)
      const min = new JsonConstraint(trie, schema).minTokens
      for (let i = 0; i < 60; i++) {
        const budget = min + (i < 5 ? 0 : Math.floor(rand() * 40))
        const r = walk(schema, budget)
        assert.ok(r.complete, `incomplete after ${r.tokens}/${budget} tokens: ${r.text}`)
        assert.ok(r.tokens <= budget)
        let v: unknown
        assert.doesNotThrow(() => { v = JSON.parse(r.text) }, r.text)
        assert.ok(validates(v, raw), `${r.text} does not match`)
      }
    })
  }

  it('knows the shortest document of a schema', function () {
    assert.equal(new JsonConstraint(trie, parseJsonSchema(SCHEMAS.empty)).minTokens, 2) // {}
    // {"a":0,"b":""}
    assert.equal(new JsonConstraint(trie, parseJsonSchema({ type: 'object', properties: { a: { type: 'integer' }, b: { type: 'string' }, c: { type: 'boolean' } }, required: ['a', 'b'] })).minTokens, 14)
  })

  it('refuses schemas outside the supported subset, naming the keyword', function () {
    const bad = (s: unknown, re: RegExp): void => { assert.throws(() => parseJsonSchema(s), (e: unknown) => e instanceof SchemaError && re.test(e.message)) }
    bad({ type: 'string' }, /root/)
    bad({ type: 'object', properties: { a: { type: 'string', minLength: 2 } } }, /minLength/)
    bad({ type: 'object', properties: { a: { type: ['string', 'null'] } } }, /type lists/)
    bad({ type: 'object', properties: { a: { anyOf: [] } } }, /anyOf/)
    bad({ type: 'object', properties: { a: {} }, required: ['b'] }, /required/)
    bad({ type: 'object', properties: { a: { enum: [] } } }, /enum/)
    bad({ type: 'object', properties: { a: { enum: ['x'], type: 'integer' } } }, /not of type/)
  })
})

describe('client: logprobs and token texts', function () {
  it('log-softmax with the top alternatives, ties to the lower id', function () {
    const logits = Float32Array.from([0, 2, 1, 2, -1, 0, 0, 0])
    const r = tokenLogprob(logits, 4, 0, 2, 3)
    const lse = Math.log(1 + 2 * Math.exp(2) + Math.exp(1))
    assert.ok(Math.abs(r.logprob - (1 - lse)) < 1e-6)
    assert.deepEqual(r.top.map((t) => t.token), [1, 3, 2])
    assert.deepEqual(tokenLogprob(logits, 4, 1, 0, 0).top, [])
    assert.ok(Math.abs(tokenLogprob(logits, 4, 1, 0).logprob - Math.log(Math.exp(-1) / (Math.exp(-1) + 3))) < 1e-6)
  })

  it('token texts: UTF-8 text, bytes:\\x.. for partial characters, special tokens by name', function () {
    const vocabulary = TokenVocabulary.load(tinyModel('gqa', shapes.gqa), shapes.gqa.vocab)!
    assert.equal(vocabulary.text(1), '<s>')
    assert.equal(vocabulary.bytes(1), null)
    assert.equal(vocabulary.text(3 + 0x41), 'A')
    assert.equal(vocabulary.text(3 + 0xc3), 'bytes:\\xc3')
    assert.deepEqual(vocabulary.textBytes(3 + 0xc3), [0xc3])
  })
})
