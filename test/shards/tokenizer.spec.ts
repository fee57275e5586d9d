// Streaming decode: text released token by token, with incomplete UTF-8 sequences held back
// until they complete, and released by flush() when the stream ends on one.
import assert from 'node:assert/strict'
import { TextTokenizer } from '../../src/shards/tokenizer.ts'
import { tinyModel, shapes } from '../helpers/models.ts'

describe('stream decoder', function () {
  const tokenizer = TextTokenizer.load(tinyModel('gqa', shapes.gqa))!
  // byte-level BPE: '€' is three byte tokens
  const ids = tokenizer.encode('price: 5€ ok', false)
  const euro = ids.indexOf(tokenizer.encode('€', false)[0])

  it('holds back a multi-byte character until its last byte arrives', function () {
    const decoder = tokenizer.streamDecoder()
    const pieces = ids.map((t) => decoder.push(t))
    assert.deepEqual(pieces.slice(euro, euro + 3), ['', '', '€'])
    assert.equal(pieces.join('') + decoder.flush(), 'price: 5€ ok')
    assert.equal(decoder.flush(), '')
  })

  it('flush releases an incomplete sequence at the end: the pieces add up to decode()', function () {
    const cut = ids.slice(0, euro + 2)
    const decoder = tokenizer.streamDecoder()
    const streamed = cut.map((t) => decoder.push(t)).join('')
    assert.equal(streamed, 'price: 5')
    const tail = decoder.flush()
    assert.equal(tail, '\uFFFD')
    assert.equal(streamed + tail, tokenizer.decode(cut))
  })
})

describe('make-model\'s tokenizer', function () {
  const tokenizer = TextTokenizer.load(tinyModel('gqa', shapes.gqa))!

  it('digits are text, and <s>, </s> are single special tokens that decoding skips', function () {
    const text = 'Numbers 0, 1, 2, 10 and 2026'
    const ids = tokenizer.encode(text, false)
    assert.ok(!ids.some((t) => t <= 2), `no special ids in ${ids.join(',')}`)
    assert.equal(tokenizer.decode(ids), text)
    assert.deepEqual(tokenizer.encode('<s>Hi</s>', false), [1, ...tokenizer.encode('Hi', false), 2])
    assert.equal(tokenizer.decode([1, ...ids, 2]), text)
    assert.equal(tokenizer.decode([1, ...ids, 2], false), `<s>${text}</s>`)
  })
})
