import assert from 'node:assert/strict'
import path from 'node:path'
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { tempDir } from '../helpers/models.ts'
import { ReferenceLlama } from '../shards/reference.ts'
import { TextTokenizer } from '../../src/shards/tokenizer.ts'

describe('strata make-model + generate (local, real processes)', function () {
  let dir: string
  before(async function () {
    dir = path.join(tempDir('cli-'), 'model')
    const r = await runCli(['make-model', '--out', dir, '--layers', '3', '--hidden', '64', '--heads', '4', '--kv-heads', '2', '--intermediate', '96', '--vocab', '320', '--seed', '5'])
    assert.equal(r.code, 0, r.stderr)
  })

  it('make-model writes a Hugging Face directory with a tokenizer, a chat template and a generation config', function () {
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'generation_config.json']) assert.ok(existsSync(path.join(dir, f)), f)
    // the layout transformers now saves: the template in its own file, not in tokenizer_config.json
    assert.equal(JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')).chat_template, undefined)
    assert.deepEqual(JSON.parse(readFileSync(path.join(dir, 'generation_config.json'), 'utf8')).eos_token_id, [2])
  })

  /** a copy of the model directory, to change some of its files */
  const copyModel = (): string => {
    const copy = tempDir('cli-copy-')
    for (const f of readdirSync(dir)) copyFileSync(path.join(dir, f), path.join(copy, f))
    return copy
  }

  it('generate --system with --prompt, and --messages FILE.json with --prompt: the conversation through the template, one BOS', async function () {
    const tokenizer = TextTokenizer.load(dir)!
    const reference = new ReferenceLlama(dir)
    const system = { role: 'system', content: 'You answer in one word.' }
    const history = [{ role: 'user', content: 'Hello there' }, { role: 'assistant', content: 'Hi!' }]
    const file = path.join(tempDir('cli-conv-'), 'conversation.json')
    writeFileSync(file, JSON.stringify({ messages: [system, ...history] }))
    const runs: Array<[string[], Array<{ role: string, content: string }>]> = [
      [['--system', system.content, '--prompt', 'How are you?'], [system, { role: 'user', content: 'How are you?' }]],
      [['--messages', file, '--prompt', 'How are you?'], [system, ...history, { role: 'user', content: 'How are you?' }]]
    ]
    for (const [flags, messages] of runs) {
      const r = await runCli(['generate', '--model', dir, ...flags, '--max-new-tokens', '4', '--ignore-eos', '--json'])
      assert.equal(r.code, 0, r.stderr)
      const done = jsonLines(r.stdout).at(-1)!
      const ids = tokenizer.encodeChat(messages)
      assert.deepEqual([ids[0], ids.filter((t) => t === 1).length], [1, 1], 'the template\'s BOS, and no second one')
      assert.equal(done.promptTokens, ids.length)
      assert.deepEqual(done.tokens, reference.greedy(ids, 4), flags.join(' '))
    }
  })

  it('generation stops on an eos_token_id of generation_config.json (a list) and never prints the stopping token', async function () {
    const prompt = [1, 20, 30, 40]
    const free = new ReferenceLlama(dir).greedy(prompt, 8)
    // the first token that did not appear before: with it as an EOS, generation ends right there
    const k = free.findIndex((t, i) => i > 0 && !free.slice(0, i).includes(t) && t !== 2)
    assert.ok(k > 0, `no usable token in ${free.join(',')}`)
    const copy = copyModel()
    writeFileSync(path.join(copy, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: [2, free[k]] }))
    const r = await runCli(['generate', '--model', copy, '--prompt-ids', prompt.join(','), '--max-new-tokens', '8', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const done = jsonLines(r.stdout).at(-1)!
    assert.deepEqual(done.tokens, free.slice(0, k + 1))
    assert.equal(done.finishReason, 'stop')
    const tokenizer = TextTokenizer.load(dir)!
    assert.equal(done.text, tokenizer.decode(free.slice(0, k)))
    assert.notEqual(tokenizer.decode([free[k]]), '', 'the stopping token has text of its own, which must not be printed')
  })

  it('a model without a chat template: --chat fails saying where strata looked', async function () {
    const copy = copyModel()
    rmSync(path.join(copy, 'chat_template.jinja'))
    const r = await runCli(['generate', '--model', copy, '--chat', '--prompt', 'Hi', '--max-new-tokens', '2'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /the model has no chat template: looked in .*chat_template\.jinja, .*additional_chat_templates\/\*\.jinja and the chat_template key of .*tokenizer_config\.json/)
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

  it('generate --prompt streams text; int8 quantized runs too, through the quantized-span cache', async function () {
    const r = await runCli(['generate', '--model', dir, '--prompt', 'Hello swarm', '--max-new-tokens', '5', '--ignore-eos'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /\[5 tokens, [\d.]+ tok\/s/)
    const cacheDir = tempDir('local-quant-cache-')
    const int8 = async (): Promise<string> => {
      const q = await runCli(['generate', '--model', dir, '--prompt', 'Hello swarm', '--max-new-tokens', '5', '--quantize', 'int8', '--json'], 60_000, { ...process.env, STRATA_CACHE_DIR: cacheDir })
      assert.equal(q.code, 0, q.stderr)
      return q.stdout
    }
    const cold = await int8()
    const entries = readdirSync(path.join(cacheDir, 'spans'))
    assert.equal(entries.length, 1, `one quantized span stored, got ${entries.join(', ')}`)
    const warm = await int8()
    assert.deepEqual(readdirSync(path.join(cacheDir, 'spans')), entries)
    const tokens = (out: string): unknown => jsonLines(out).find((e) => e.event === 'done')?.tokens
    assert.equal((tokens(cold) as number[]).length > 0, true)
    assert.deepEqual(tokens(warm), tokens(cold))
  })

  it('bad conversation flags and files exit non-zero with a clear message', async function () {
    const cases: Array<[string[], RegExp]> = [
      [['--prompt-ids', '1', '--system', 'x'], /--prompt-ids alone \(token ids do not go through the chat template\)/],
      [['--messages', path.join(dir, 'nope.json')], /--messages .*nope\.json: ENOENT/],
      [['--messages', path.join(dir, 'config.json')], /--messages .*config\.json: expected a non-empty JSON array of \{"role", "content"\}/]
    ]
    await Promise.all(cases.map(async ([args, re]) => {
      const r = await runCli(['generate', '--model', dir, ...args])
      assert.notEqual(r.code, 0, args.join(' '))
      assert.match(r.stderr, re, args.join(' '))
    }))
  })

  it('bad flags and bad inputs exit non-zero with a clear message', async function () {
    // one CLI process after the other: generous under a loaded machine
    this.timeout(180_000)
    const cases: Array<[string[], RegExp]> = [
      [['generate', '--model', dir], /give --prompt TEXT, --messages FILE\.json/],
      [['generate', '--model', dir, '--prompt-ids', '1,x'], /expected comma-separated token ids/],
      [['generate', '--model', dir, '--prompt-ids', '1', '--max-new-tokens', '-2'], /expected an integer/],
      [['generate', '--model', dir, '--prompt-ids', '99999'], /token id 99999 is outside the vocabulary/],
      [['generate', '--model', dir, '--prompt-ids', '1', '--max-new-tokens', '5000'], /exceeds the model's 2048 positions/],
      [['generate', '--model', path.join(dir, 'nope'), '--prompt', 'x'], /config\.json: \(file\): not found/],
      [['make-model', '--out', dir, '--layers', '2', '--hidden', '64', '--heads', '3', '--kv-heads', '1', '--intermediate', '8', '--vocab', '300', '--seed', '1'], /head dim .* must be an even integer/],
      [['generate', '--model', dir, '--prompt-ids', '1', '--head-format', 'int3'], /--head-format .*Allowed choices are f32, f16, int8, int4/],
      [['peer', '--model', dir, '--announce', 'not-an-address'], /--announce .*expected a multiaddr/],
      [['frobnicate'], /unknown command/]
    ]
    for (const [args, re] of cases) {
      const r = await runCli(args)
      assert.notEqual(r.code, 0, args.join(' '))
      assert.match(r.stderr, re, args.join(' '))
    }
  })
})
