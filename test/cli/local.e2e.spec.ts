import assert from 'node:assert/strict'
import path from 'node:path'
import { existsSync } from 'node:fs'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { tempDir } from '../helpers/models.ts'
import { ReferenceLlama } from '../shards/reference.ts'

describe('strata make-model + generate (local, real processes)', function () {
  let dir: string
  before(async function () {
    dir = path.join(tempDir('cli-'), 'model')
    const r = await runCli(['make-model', '--out', dir, '--layers', '3', '--hidden', '64', '--heads', '4', '--kv-heads', '2', '--intermediate', '96', '--vocab', '320', '--seed', '5'])
    assert.equal(r.code, 0, r.stderr)
  })

  it('make-model writes a Hugging Face directory with a tokenizer', function () {
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(existsSync(path.join(dir, f)), f)
  })

  it('generate --json prints token events and a done event matching the reference model', async function () {
    const r = await runCli(['generate', '--model', dir, '--prompt-ids', '1,20,30,40', '--max-new-tokens', '6', '--ignore-eos', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const events = jsonLines(r.stdout)
    assert.equal(events.length, 7)
    events.slice(0, 6).forEach((e, i) => {
      assert.deepEqual(Object.keys(e), ['event', 'index', 'token', 'route'])
      assert.equal(e.event, 'token')
      assert.equal(e.index, i)
      assert.deepEqual(e.route, [{ peer: 'local', start: 0, end: 3 }])
    })
    const done = events[6]
    assert.equal(done.event, 'done')
    assert.deepEqual(done.tokens, events.slice(0, 6).map((e) => e.token))
    assert.equal(typeof done.text, 'string')
    assert.equal(done.reroutes, 0)
    assert.ok(done.tokensPerSecond > 0)
    assert.deepEqual(done.tokens, new ReferenceLlama(dir).greedy([1, 20, 30, 40], 6))
  })

  it('generate --prompt streams text; int8 quantized runs too', async function () {
    const r = await runCli(['generate', '--model', dir, '--prompt', 'Hello swarm', '--max-new-tokens', '5', '--ignore-eos'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /\[5 tokens, [\d.]+ tok\/s/)
    const q = await runCli(['generate', '--model', dir, '--prompt', 'Hello swarm', '--max-new-tokens', '5', '--quantize', 'int8', '--json'])
    assert.equal(q.code, 0, q.stderr)
  })

  it('bad flags and bad inputs exit non-zero with a clear message', async function () {
    const cases: Array<[string[], RegExp]> = [
      [['generate', '--model', dir], /exactly one of --prompt or --prompt-ids/],
      [['generate', '--model', dir, '--prompt-ids', '1,x'], /expected comma-separated token ids/],
      [['generate', '--model', dir, '--prompt-ids', '1', '--max-new-tokens', '-2'], /expected an integer/],
      [['generate', '--model', dir, '--prompt-ids', '99999'], /token id 99999 is outside the vocabulary/],
      [['generate', '--model', dir, '--prompt-ids', '1', '--max-new-tokens', '5000'], /exceeds the model's 2048 positions/],
      [['generate', '--model', path.join(dir, 'nope'), '--prompt', 'x'], /config\.json: \(file\): not found/],
      [['make-model', '--out', dir, '--layers', '2', '--hidden', '64', '--heads', '3', '--kv-heads', '1', '--intermediate', '8', '--vocab', '300', '--seed', '1'], /head dim .* must be an even integer/],
      [['frobnicate'], /unknown command/]
    ]
    for (const [args, re] of cases) {
      const r = await runCli(args)
      assert.notEqual(r.code, 0, args.join(' '))
      assert.match(r.stderr, re, args.join(' '))
    }
  })
})
