// Speculative decoding locally: prompt-lookup drafts, and outputs identical to plain decoding
// (greedy, seeded sampling, log-probabilities) over a real onnxruntime pipeline split in two spans.
import assert from 'node:assert/strict'
import { promptLookupDraft } from '../../src/client/draft.ts'
import { LocalModel } from '../../src/client/local-model.ts'
import { DraftModelMismatchError } from '../../src/client/draft-model.ts'
import { GenerationError, type GenerateOptions } from '../../src/client/generation.ts'
import type { DoneOutput, GenerationEvent, TokenOutput } from '../../src/client/session.ts'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { tinyModel, tempDir } from '../helpers/models.ts'
import { e2eShape } from '../helpers/local.ts'

describe('client/draft: prompt lookup', function () {
  it('proposes what followed the most recent earlier copy of the last n-gram, longest n first', function () {
    // "9 1 2" occurs once before; "1 2" alone would match the later "1 2 7"
    assert.deepEqual(promptLookupDraft([9, 1, 2, 3, 4, 1, 2, 7, 9, 1, 2], 2), [3, 4])
    // only a 1-gram matches: its most recent earlier occurrence
    assert.deepEqual(promptLookupDraft([5, 6, 5, 8, 5], 3), [8, 5, 8])
  })

  it('continues a pattern periodically past the end, and gives nothing when nothing repeats', function () {
    assert.deepEqual(promptLookupDraft([1, 2, 3, 1, 2], 4), [3, 1, 2, 3])
    assert.deepEqual(promptLookupDraft([7, 7], 3), [7, 7, 7])
    assert.deepEqual(promptLookupDraft([1, 2, 3, 4], 4), [])
    assert.deepEqual(promptLookupDraft([1, 2, 1], 0), [])
  })
})

describe('client/generation: speculative decoding equals plain decoding (local, two spans)', function () {
  this.timeout(120_000)
  const dir = tinyModel('e2e', e2eShape)
  let model: LocalModel
  before(async function () { model = await LocalModel.load(dir, { threads: 1, spans: [[0, 2], [2, 4]] }) })
  after(async function () { await model?.close() })

  async function run (prompt: number[], opts: GenerateOptions): Promise<{ tokens: TokenOutput[], done: DoneOutput }> {
    const events: GenerationEvent[] = []
    for await (const e of model.generate({ ids: prompt }, { maxNewTokens: 60, ignoreEos: true, ...opts })) events.push(e)
    const done = events.pop() as DoneOutput
    return { tokens: events as TokenOutput[], done }
  }

  for (const prompt of [[1, 11, 22, 33], [1, 7, 8, 9, 7, 8, 9, 7, 8]]) {
    it(`greedy, prompt ${prompt.join(',')}: the same tokens, log-probabilities equal to rounding, some drafts accepted and some rejected`, async function () {
      const plain = await run(prompt, { logprobs: 2 })
      for (const k of [1, 4]) {
        const spec = await run(prompt, { logprobs: 2, speculate: k })
        assert.deepEqual(spec.done.tokens, plain.done.tokens, `speculate ${k}`)
        // a multi-row step rounds differently from one-row steps (onnxruntime's kernels are not
        // row-count invariant): log-probabilities agree to float rounding, not bit for bit
        spec.tokens.forEach((t, i) => {
          const p = plain.tokens[i].logprob!
          assert.deepEqual(t.logprob!.top.map((x) => x.token), p.top.map((x) => x.token))
          assert.ok(Math.abs(t.logprob!.logprob - p.logprob) < 1e-4, `token ${i}: ${t.logprob!.logprob} vs ${p.logprob}`)
        })
        const s = spec.done.speculation
        assert.ok(s !== undefined)
        assert.equal(s.draftTokens, k)
        // both paths ran: accepted drafts (tokens without a step) and rejected ones (KV truncated)
        assert.ok(s.accepted > 0 && s.accepted < s.proposed, JSON.stringify(s))
        assert.ok(s.verifySteps < 59, `fewer steps than tokens: ${JSON.stringify(s)}`)
        assert.equal(s.acceptanceRate, s.accepted / s.proposed)
      }
      assert.equal(plain.done.speculation, undefined)
    })
  }

  it('seeded sampling gives the same tokens: one draw per emitted token, exactly as plain decoding', async function () {
    const opts = { temperature: 0.7, topK: 20, seed: 11, repetitionPenalty: 1.1 }
    const plain = await run([1, 7, 8, 9, 7, 8, 9, 7, 8], opts)
    const spec = await run([1, 7, 8, 9, 7, 8, 9, 7, 8], { ...opts, speculate: 3 })
    assert.deepEqual(spec.done.tokens, plain.done.tokens)
    assert.ok(spec.done.speculation!.proposed > 0)
  })

  it('stops at EOS as plain decoding does, and rejects a bad draft length', async function () {
    const plain = await run([1, 11, 22, 33], {})
    // the same weights with a token that recurs in the output as EOS: both runs stop at its first occurrence
    const eos = plain.done.tokens[10]
    const cut = plain.done.tokens.indexOf(eos) + 1
    const eosDir = tempDir('spec-eos-')
    cpSync(dir, eosDir, { recursive: true })
    for (const file of ['config.json', 'generation_config.json']) {
      const json = JSON.parse(readFileSync(path.join(eosDir, file), 'utf8'))
      writeFileSync(path.join(eosDir, file), JSON.stringify({ ...json, eos_token_id: eos }))
    }
    const eosModel = await LocalModel.load(eosDir, { threads: 1 })
    try {
      for (const speculate of [0, 4]) {
        let done: DoneOutput | undefined
        for await (const e of eosModel.generate({ ids: [1, 11, 22, 33] }, { maxNewTokens: 60, speculate })) if (e.event === 'done') done = e
        assert.deepEqual(done?.tokens, plain.done.tokens.slice(0, cut), `speculate ${speculate}`)
        assert.equal(done?.finishReason, 'stop')
      }
    } finally {
      await eosModel.close()
    }
    await assert.rejects(run([1, 2], { speculate: -1 }), GenerationError)
    await assert.rejects(run([1, 2], { speculate: 1.5 }), /speculate must be a non-negative integer/)
  })
})

describe('client/draft-model: a local model drafts, the model decides (local, two spans)', function () {
  this.timeout(120_000)
  const dir = tinyModel('e2e', e2eShape)
  const prompt = [1, 11, 22, 33]

  async function done (model: LocalModel, speculate: number): Promise<DoneOutput> {
    for await (const e of model.generate({ ids: prompt }, { maxNewTokens: 40, ignoreEos: true, speculate })) if (e.event === 'done') return e
    throw new Error('no done event')
  }

  it('the same checkpoint as draft model: plain decoding\'s tokens, nearly every draft accepted at f32, most at int8', async function () {
    const plain = await LocalModel.load(dir, { threads: 1, spans: [[0, 2], [2, 4]] })
    const expected = (await done(plain, 0)).tokens
    await plain.close()
    for (const weightFormat of ['f32', 'int8'] as const) {
      const model = await LocalModel.load(dir, { threads: 1, spans: [[0, 2], [2, 4]], draftModel: { dir, weightFormat } })
      try {
        const d = await done(model, 4)
        assert.deepEqual(d.tokens, expected, weightFormat)
        const s = d.speculation!
        assert.equal(s.drafter, 'model')
        // f32: the draft is the model itself (rows computed in other step shapes may round apart)
        assert.ok(s.acceptanceRate >= (weightFormat === 'f32' ? 0.9 : 0.5), `${weightFormat}: ${JSON.stringify(s)}`)
        assert.ok(s.verifySteps < 20, `${weightFormat}: far fewer steps than tokens: ${JSON.stringify(s)}`)
        // a plain run on the same model ignores the draft model; prompt lookup reports itself
        assert.equal((await done(model, 0)).speculation, undefined)
      } finally {
        await model.close()
      }
    }
    const lookup = await LocalModel.load(dir, { threads: 1 })
    try {
      assert.equal((await done(lookup, 4)).speculation!.drafter, 'prompt-lookup')
    } finally {
      await lookup.close()
    }
  })

  it('refuses a draft model with another vocabulary, naming both sizes', async function () {
    const other = tinyModel('draft-other-vocab', { ...e2eShape, vocab: 256 })
    await assert.rejects(LocalModel.load(dir, { threads: 1, draftModel: { dir: other } }),
      (err: Error) => err instanceof DraftModelMismatchError && /vocabulary of 256 tokens, the model's has 320/.test(err.message))
  })
})

