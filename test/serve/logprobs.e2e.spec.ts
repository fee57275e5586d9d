// Logprobs, echo, n > 1 and JSON response formats through `strata serve` over a real swarm of
// peer processes, driven by the openai client; compared with the local engine and the
// `strata perplexity` CLI on the same model.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import OpenAI from 'openai'
import { LocalModel } from '../../src/client/local-model.ts'
import { modelIdFor } from '../../src/shards/config.ts'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { tinyModel } from '../helpers/models.ts'
import { PeerProcess, STRATA_BIN, startSwarm, stopPeers, type TestSwarm } from '../helpers/swarm.ts'

const shape = { layers: 4, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 320, seed: 17 }
const PROMPT = 'The swarm runs large models.'
/** same positions, same weights, f32 wire: the swarm's numbers equal the local engine's up to float rounding */
const CLOSE = 1e-4

/** An independent validator for the JSON Schema subset the gateway constrains to. */
function validates (v: unknown, s: any): boolean {
  if (s.enum !== undefined) return s.enum.some((e: unknown) => e === v)
  switch (s.type) {
    case 'object':
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
      if (s.properties === undefined) return true
      return (s.required ?? []).every((k: string) => k in v) &&
        Object.entries(v).every(([k, x]) => k in s.properties && validates(x, s.properties[k]))
    case 'array': return Array.isArray(v) && v.every((x) => s.items === undefined || validates(x, s.items))
    case 'string': return typeof v === 'string'
    case 'number': return typeof v === 'number' && Number.isFinite(v)
    case 'integer': return Number.isSafeInteger(v)
    case 'boolean': return typeof v === 'boolean'
    default: return false
  }
}

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    age: { type: 'integer' },
    score: { type: 'number' },
    colour: { enum: ['red', 'green', 'blue'] },
    tags: { type: 'array', items: { type: 'string' } },
    ok: { type: 'boolean' }
  },
  required: ['name', 'age', 'colour']
}

describe('strata serve: logprobs, echo, n and JSON output over a real swarm', function () {
  this.timeout(120_000)
  const dir = tinyModel('logprobs', shape)
  const modelId = modelIdFor(dir)
  let swarm: TestSwarm | null = null
  let serve: PeerProcess | null = null
  let client: OpenAI
  let local: { ids: number[], logprobs: Array<number | null>, nll: number }

  before(async function () {
    swarm = await startSwarm(dir, [[0, 2], [2, 4]])
    const child = spawn(process.execPath, [STRATA_BIN, 'serve', '--model', dir, '--bootstrap', swarm.bootstrap, '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
    serve = new PeerProcess(child, 'serve')
    const model = await LocalModel.load(dir, { threads: 1 })
    try {
      const [line, scored] = await Promise.all([serve.waitFor((e) => e.event === 'listening', 30_000), model.score({ text: PROMPT })])
      local = { ids: scored.tokens, logprobs: scored.logprobs, nll: scored.nll }
      client = new OpenAI({ baseURL: `${line.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 60_000 })
    } finally {
      await model.close()
    }
  })

  after(async function () {
    serve?.kill('SIGKILL')
    await serve?.exited
    await stopPeers(swarm?.peers ?? [])
  })

  it('echo + logprobs: the prompt\'s logprobs equal the local engine\'s and sum to the NLL strata perplexity reports', async function () {
    const r = await client.completions.create({ model: modelId, prompt: PROMPT, max_tokens: 4, temperature: 0, echo: true, logprobs: 3, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming)
    const c = r.choices[0]
    const lp = c.logprobs!
    const n = local.ids.length
    assert.ok(c.text.startsWith(PROMPT))
    assert.equal(lp.tokens!.length, n + 4)
    assert.equal(lp.token_logprobs![0], null, 'the first prompt token has no logprob')
    assert.equal(lp.top_logprobs![0], null)
    for (let i = 1; i < n; i++) assert.ok(Math.abs(lp.token_logprobs![i]! - local.logprobs[i]!) < CLOSE, `prompt token ${i}: ${lp.token_logprobs![i]} vs ${local.logprobs[i]}`)
    // text offsets: increasing, starting at 0, the prompt's tokens spell the prompt
    assert.equal(lp.text_offset![0], 0)
    assert.ok(lp.text_offset!.every((o, i) => i === 0 || o >= lp.text_offset![i - 1]))
    assert.equal(lp.tokens!.slice(1, n).join(''), PROMPT)
    assert.equal(lp.text_offset![n], PROMPT.length)
    // greedy: every generated token is the most likely one, and its logprob is the best of top_logprobs
    for (let i = n; i < n + 4; i++) {
      const top = Object.values(lp.top_logprobs![i]!)
      assert.ok(top.length >= 3 && top.length <= 4)
      assert.ok(Math.abs(Math.max(...top) - lp.token_logprobs![i]!) < 1e-9)
    }
    const sum = lp.token_logprobs!.slice(1, n).reduce((a, b) => a! + b!, 0)!
    const cli = await runCli(['perplexity', '--model', dir, '--prompt-ids', local.ids.join(','), '--json'])
    assert.equal(cli.code, 0, cli.stderr)
    const report = jsonLines(cli.stdout).at(-1)!
    assert.equal(report.scored, n - 1)
    assert.ok(Math.abs(-sum - report.nll) < CLOSE * n, `Σ logprobs ${sum} vs NLL ${report.nll}`)
    assert.ok(Math.abs(report.perplexity - Math.exp(report.nll / (n - 1))) < 1e-9)

    // the same through the swarm with the perplexity CLI
    const viaSwarm = await runCli(['perplexity', '--model', dir, '--prompt-ids', local.ids.join(','), '--bootstrap', swarm!.bootstrap, '--json'])
    assert.equal(viaSwarm.code, 0, viaSwarm.stderr)
    assert.ok(Math.abs(jsonLines(viaSwarm.stdout).at(-1)!.nll - report.nll) < CLOSE * n)

    // streamed: the same logprobs, chunk by chunk, the echoed prompt first
    const stream = await client.completions.create({ model: modelId, prompt: PROMPT, max_tokens: 4, temperature: 0, echo: true, logprobs: 3, ignore_eos: true, stream: true } as OpenAI.CompletionCreateParamsStreaming)
    const chunks: OpenAI.Completion[] = []
    for await (const chunk of stream) chunks.push(chunk)
    assert.equal(chunks[0].choices[0].text, PROMPT)
    const streamed = chunks.flatMap((ch) => ch.choices.flatMap((x) => x.logprobs?.token_logprobs ?? []))
    assert.deepEqual(streamed, lp.token_logprobs)
    assert.equal(chunks.map((ch) => ch.choices[0].text).join(''), c.text)
  })

  it('strata perplexity refuses bad input with a clear message', async function () {
    const cases: Array<[string[], RegExp]> = [
      [['perplexity', '--model', dir], /exactly one of --file or --prompt-ids/],
      [['perplexity', '--model', dir, '--file', '/nonexistent/text.txt'], /cannot read --file/],
      [['perplexity', '--model', dir, '--prompt-ids', '1'], /at least 2 tokens/],
      [['perplexity', '--model', dir, '--prompt-ids', '1,2', '--wire', 'f16'], /--wire applies to the swarm/]
    ]
    for (const [args, re] of cases) {
      const r = await runCli(args)
      assert.notEqual(r.code, 0, args.join(' '))
      assert.match(r.stderr, re, args.join(' '))
    }
  })

  it('chat with logprobs and top_logprobs, whole and streamed', async function () {
    const messages = [{ role: 'user' as const, content: 'Hello there' }]
    const r = await client.chat.completions.create({ model: modelId, messages, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming)
    const content = r.choices[0].logprobs!.content!
    assert.equal(content.length, 5)
    for (const e of content) {
      assert.equal(e.top_logprobs.length, 3)
      assert.ok(e.top_logprobs.every((t, i) => i === 0 || t.logprob <= e.top_logprobs[i - 1].logprob))
      assert.equal(e.logprob, e.top_logprobs[0].logprob, 'greedy picks the most likely token')
      assert.ok(e.logprob <= 0 && Array.isArray(e.bytes))
    }
    assert.equal(Buffer.from(content.flatMap((e) => e.bytes!)).toString('utf8'), r.choices[0].message.content)

    const stream = await client.chat.completions.create({ model: modelId, messages, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming)
    const streamed: OpenAI.ChatCompletionTokenLogprob[] = []
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []))
    assert.deepEqual(streamed, content)
  })

  it('n: 3 gives 3 choices, each reproducible from the seed; choice 0 is the n: 1 answer', async function () {
    const body = { model: modelId, prompt: PROMPT, max_tokens: 6, temperature: 1, seed: 7, n: 3, ignore_eos: true, return_token_ids: true }
    const r = await client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming)
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2])
    assert.equal(r.usage!.completion_tokens, 18)
    const tokens = r.choices.map((c) => (c as any).token_ids)
    assert.ok(new Set(tokens.map((t) => t.join())).size > 1, 'different seeds sample different tokens')
    const again = await client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming)
    assert.deepEqual(again.choices.map((c) => (c as any).token_ids), tokens)
    const one = await client.completions.create({ ...body, n: 1 } as OpenAI.CompletionCreateParamsNonStreaming)
    assert.deepEqual((one.choices[0] as any).token_ids, tokens[0])

    const stream = await client.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 1, seed: 3, n: 3, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming)
    const finished = new Set<number>()
    for await (const chunk of stream) for (const c of chunk.choices) if (c.finish_reason !== null) finished.add(c.index)
    assert.deepEqual([...finished].sort(), [0, 1, 2])
  })

  it('50 seeded sampled generations with a JSON schema all parse and validate, within max_tokens', async function () {
    const outputs: string[] = []
    const finishes: string[] = []
    // 10 requests × n 5 = 50 choices, seeds 0…49, one request (5 sessions per peer) at a time;
    // a small budget forces the grammar to close early
    const request = async (r: number): Promise<void> => {
      const res = await client.completions.create({
        model: modelId, prompt: PROMPT, max_tokens: 40 + r, temperature: 1, seed: r * 5, n: 5,
        response_format: { type: 'json_schema', json_schema: { name: 'person', schema: SCHEMA } }
      } as any) as OpenAI.Completion
      for (const c of res.choices) { outputs.push(c.text); finishes.push(c.finish_reason) }
      assert.ok(res.usage!.completion_tokens <= 5 * (40 + r))
    }
    for (let r = 0; r < 10; r++) await request(r)
    assert.equal(outputs.length, 50)
    for (const text of outputs) {
      let value: unknown
      assert.doesNotThrow(() => { value = JSON.parse(text) }, `not JSON: ${text}`)
      assert.ok(validates(value, SCHEMA), `does not validate: ${text}`)
    }
    assert.ok(finishes.every((f) => f === 'stop'), 'a finished document ends the generation')
  })

  it('greedy JSON objects (chat, streamed) parse; a too small max_tokens is refused', async function () {
    const stream = await client.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: 'give me JSON' }], max_tokens: 30, temperature: 0, response_format: { type: 'json_object' }, stream: true })
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
    const value = JSON.parse(text)
    assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value))

    await assert.rejects(client.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: 'x' }], max_tokens: 5, response_format: { type: 'json_schema', json_schema: { name: 'p', schema: SCHEMA } } }),
      (err: any) => err.status === 400 && err.code === 'max_tokens_too_small' && err.param === 'max_tokens')
    await assert.rejects(client.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'p', schema: { type: 'object', properties: { a: { type: 'string', format: 'date' } } } } } }),
      (err: any) => err.status === 400 && err.param === 'response_format.json_schema.schema')
  })
})
