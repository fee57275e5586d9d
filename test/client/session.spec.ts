// One generation's token events and done event: the streamed texts add up to done.text, also
// when the last token leaves a multi-byte character incomplete.
import assert from 'node:assert/strict'
import { runGeneration, type GenerationEvent } from '../../src/client/session.ts'
import type { BlockPipeline, Head } from '../../src/client/generation.ts'
import { loadModelConfig } from '../../src/shards/config.ts'
import { TextTokenizer } from '../../src/shards/tokenizer.ts'
import { tinyModel, shapes } from '../helpers/models.ts'

/** A head whose greedy choices are `script`, in order, over an identity pipeline. */
function scripted (dir: string, script: number[]): { head: Head, pipeline: BlockPipeline } {
  const config = loadModelConfig(dir)
  let next = 0
  const head: Head = {
    config,
    embed: async (tokens) => new Float32Array(tokens.length * config.hiddenSize),
    logits: async () => {
      const logits = new Float32Array(config.vocabSize)
      logits[script[next++]] = 1
      return logits
    }
  }
  const pipeline: BlockPipeline = { forward: async (h) => h, truncate: async () => {}, route: () => [], reroutes: 0, close: async () => {} }
  return { head, pipeline }
}

async function collect (events: AsyncIterable<GenerationEvent>): Promise<GenerationEvent[]> {
  const out: GenerationEvent[] = []
  for await (const e of events) out.push(e)
  return out
}

describe('runGeneration streamed text', function () {
  const dir = tinyModel('gqa', shapes.gqa)
  const tokenizer = TextTokenizer.load(dir)!
  const ids = tokenizer.encode('price: 5€ ok', false)
  const euro = ids.indexOf(tokenizer.encode('€', false)[0])

  for (const [name, script, opts] of [
    ['ending at the token limit inside a multi-byte character', ids.slice(0, euro + 2), { ignoreEos: true }],
    ['ending at EOS right after an incomplete character', [...ids.slice(0, euro + 1), 2], {}],
    ['ending on a complete character', ids, { ignoreEos: true }]
  ] as const) {
    it(name, async function () {
      const { head, pipeline } = scripted(dir, [...script])
      const events = await collect(runGeneration(head, pipeline, tokenizer, { ids: [1] }, { maxNewTokens: opts.ignoreEos === true ? script.length : 32, ...opts }))
      const done = events.pop()!
      assert.equal(done.event, 'done')
      assert.deepEqual(done.tokens, script)
      assert.equal(events.map((e) => e.event === 'token' ? e.text : '').join(''), done.text)
    })
  }
})

describe('runGeneration never prints special or stopping tokens', function () {
  const dir = tinyModel('gqa', shapes.gqa)
  const tokenizer = TextTokenizer.load(dir)!
  const hello = tokenizer.encode('Hello world', false)

  it('special tokens inside the output are skipped; the EOS that stops it is not printed', async function () {
    const { head, pipeline } = scripted(dir, [hello[0], 1, ...hello.slice(1), 2])
    const events = await collect(runGeneration(head, pipeline, tokenizer, { ids: [1] }, {}))
    const done = events.pop()!
    assert.ok(done.event === 'done')
    assert.equal(done.finishReason, 'stop')
    assert.equal(done.text, 'Hello world')
    assert.equal(events.map((e) => e.event === 'token' ? e.text : '').join(''), 'Hello world')
  })

  it('a stopping token the tokenizer does not mark special (e.g. from generation_config.json) is not printed either', async function () {
    const stop = tokenizer.encode('!', false)[0]
    const { head, pipeline } = scripted(dir, [...hello, stop])
    const withStop: Head = { ...head, config: { ...head.config, eosTokenIds: [2, stop] } }
    const events = await collect(runGeneration(withStop, pipeline, tokenizer, { ids: [1] }, {}))
    const done = events.pop()!
    assert.ok(done.event === 'done')
    assert.deepEqual([done.finishReason, done.text, done.tokens.at(-1)], ['stop', 'Hello world', stop])
    assert.equal(events.map((e) => e.event === 'token' ? e.text : '').join(''), 'Hello world')
  })
})
