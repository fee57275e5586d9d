// Pure parts of the gateway: request validation, stop sequences, the health report and its table.
import assert from 'node:assert/strict'
import { StopMatcher } from '../../src/serve/stop.ts'
import { parseChatRequest, parseCompletionRequest } from '../../src/serve/requests.ts'
import { InvalidRequestError } from '../../src/serve/errors.ts'
import { buildHealthReport, type ObservedPeer } from '../../src/serve/health.ts'
import { renderHealthTable } from '../../src/serve/health-table.ts'
import type { PeerRecord } from '../../src/routing/index.ts'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { prepareRequest, type Backend } from '../../src/serve/run.ts'
import { TextTokenizer } from '../../src/shards/tokenizer.ts'
import { shapes, tempDir, tinyModel } from '../helpers/models.ts'

describe('serve: stop sequences', function () {
  const run = (stops: string[], deltas: string[]): { out: string, stopped: boolean } => {
    const m = new StopMatcher(stops)
    let out = ''
    for (const d of deltas) {
      const step = m.push(d)
      out += step.text
      if (step.stopped) return { out, stopped: true }
    }
    return { out: out + m.flush(), stopped: false }
  }

  it('cuts at a stop sequence split across deltas and holds back possible prefixes', function () {
    assert.deepEqual(run(['END'], ['abc E', 'N', 'D tail']), { out: 'abc ', stopped: true })
    const m = new StopMatcher(['END'])
    assert.deepEqual(m.push('abE'), { text: 'ab', stopped: false })
    assert.deepEqual(m.push('x'), { text: 'Ex', stopped: false })
  })

  it('matches across token boundaries of real streamed text, multi-byte characters included', function () {
    const tokenizer = TextTokenizer.load(tinyModel('gqa', shapes.gqa))!
    for (const [text, stop, before] of [['The quick brown fox jumps', 'ick bro', 'The qu'], ['price: 5€ ok', '€ o', 'price: 5']]) {
      const decoder = tokenizer.streamDecoder()
      const pieces = tokenizer.encode(text, false).map((t) => decoder.push(t))
      assert.equal(pieces.join('') + decoder.flush(), text)
      assert.ok(!pieces.some((p) => p.includes(stop)), `"${stop}" spans several tokens of ${JSON.stringify(pieces)}`)
      assert.deepEqual(run([stop], pieces), { out: before, stopped: true })
    }
  })

  it('picks the earliest of several stop sequences and passes text through without any', function () {
    assert.deepEqual(run(['b', 'xa'], ['xab']), { out: '', stopped: true })
    assert.deepEqual(run([], ['a', 'b']), { out: 'ab', stopped: false })
    assert.deepEqual(run(['zz'], ['az', 'b']), { out: 'azb', stopped: false })
  })
})

describe('serve: request validation', function () {
  const bad = (fn: () => unknown, param: string | null): void => {
    assert.throws(fn, (err: unknown) => err instanceof InvalidRequestError && err.status === 400 && err.param === param)
  }

  it('accepts OpenAI completions with defaults and extensions', function () {
    const r = parseCompletionRequest({ model: 'm', prompt: [1, 2], max_tokens: 4, temperature: 0, stop: 'x', seed: -1, stream: true, stream_options: { include_usage: true }, user: 'ignored' })
    assert.deepEqual(r.prompt, { ids: [1, 2] })
    assert.equal(r.params.maxTokens, 4)
    assert.deepEqual(r.params.stop, ['x'])
    assert.equal(r.params.seed, 2 ** 32 - 1)
    assert.equal(r.includeUsage, true)
    const d = parseCompletionRequest({ prompt: ['hi'], top_p: 0, top_k: -1, logprobs: null })
    assert.deepEqual(d.prompt, { text: 'hi' })
    assert.equal(d.params.temperature, 0, 'top_p 0 is greedy')
    assert.equal(d.params.topK, 0)
    assert.equal(d.params.maxTokens, undefined)
  })

  it('refuses missing, mistyped and out-of-range fields with the parameter named', function () {
    bad(() => parseCompletionRequest([]), null)
    bad(() => parseCompletionRequest({}), 'prompt')
    bad(() => parseCompletionRequest({ prompt: 5 }), 'prompt')
    bad(() => parseCompletionRequest({ prompt: [] }), 'prompt')
    bad(() => parseCompletionRequest({ prompt: [1, -2] }), 'prompt')
    bad(() => parseCompletionRequest({ prompt: ['a', 'b'] }), 'prompt')
    bad(() => parseCompletionRequest({ prompt: 'x', max_tokens: -1 }), 'max_tokens')
    bad(() => parseCompletionRequest({ prompt: 'x', max_tokens: 1.5 }), 'max_tokens')
    bad(() => parseCompletionRequest({ prompt: 'x', temperature: 'hot' }), 'temperature')
    bad(() => parseCompletionRequest({ prompt: 'x', temperature: 3 }), 'temperature')
    bad(() => parseCompletionRequest({ prompt: 'x', stream: 'yes' }), 'stream')
    bad(() => parseCompletionRequest({ prompt: 'x', stop: ['a', ''] }), 'stop')
    bad(() => parseCompletionRequest({ prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop')
    bad(() => parseCompletionRequest({ prompt: 'x', n: 0 }), 'n')
    bad(() => parseCompletionRequest({ prompt: 'x', n: 9 }), 'n')
    bad(() => parseCompletionRequest({ prompt: 'x', echo: 1 }), 'echo')
    bad(() => parseCompletionRequest({ prompt: 'x', logprobs: 21 }), 'logprobs')
    bad(() => parseCompletionRequest({ prompt: 'x', best_of: 3 }), 'best_of')
    bad(() => parseCompletionRequest({ prompt: 'x', model: 7 }), 'model')
    bad(() => parseCompletionRequest({ prompt: 'x', stream_options: 1 }), 'stream_options')
  })

  it('parses chat messages (text parts joined, developer as system) and refuses others', function () {
    const r = parseChatRequest({ messages: [{ role: 'developer', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }], max_completion_tokens: 3 })
    assert.deepEqual(r.prompt, { messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'ab' }] })
    assert.equal(r.params.maxTokens, 3)
    bad(() => parseChatRequest({}), 'messages')
    bad(() => parseChatRequest({ messages: 'hi' }), 'messages')
    bad(() => parseChatRequest({ messages: [{ role: 'wizard', content: 'x' }] }), 'messages[0].role')
    bad(() => parseChatRequest({ messages: [{ role: 'user' }] }), 'messages[0].content')
    bad(() => parseChatRequest({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }), 'messages[0].content[0]')
    bad(() => parseChatRequest({ messages: [{ role: 'user', content: 'x' }], tools: [{}] }), 'tools')
    bad(() => parseChatRequest({ messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }), 'top_logprobs')
    bad(() => parseChatRequest({ messages: [{ role: 'user', content: 'x' }], logprobs: 'yes' }), 'logprobs')
  })

  it('parses logprobs, echo, n and response formats', function () {
    const c = parseCompletionRequest({ prompt: 'x', logprobs: 3, echo: true, n: 3, best_of: 3 })
    assert.deepEqual([c.logprobs, c.echo, c.n, c.responseFormat], [3, true, 3, { type: 'text' }])
    const chat = (extra: object): ReturnType<typeof parseChatRequest> => parseChatRequest({ messages: [{ role: 'user', content: 'x' }], ...extra })
    assert.equal(chat({}).logprobs, null)
    assert.equal(chat({ logprobs: true }).logprobs, 0)
    assert.equal(chat({ logprobs: true, top_logprobs: 5 }).logprobs, 5)
    assert.equal(chat({ response_format: { type: 'json_object' } }).responseFormat.type, 'json')
    const schema = { type: 'object', properties: { a: { type: 'integer' }, b: { enum: ['x', 'y'] } }, required: ['a'] }
    const f = chat({ response_format: { type: 'json_schema', json_schema: { name: 's', schema } } }).responseFormat
    assert.ok(f.type === 'json' && f.schema.type === 'object' && f.schema.required[0] === 'a')
    bad(() => chat({ response_format: { type: 'yaml' } }), 'response_format.type')
    bad(() => chat({ response_format: { type: 'json_schema' } }), 'response_format.json_schema')
    bad(() => chat({ response_format: { type: 'json_schema', json_schema: { schema: { type: 'string' } } } }), 'response_format.json_schema.schema')
    bad(() => chat({ response_format: { type: 'json_schema', json_schema: { schema: { type: 'object', properties: { a: { type: 'string', pattern: 'x' } } } } } }), 'response_format.json_schema.schema')
    bad(() => chat({ response_format: { type: 'json_object' }, stop: ['}'] }), 'stop')
  })
})

describe('serve: health report', function () {
  const now = Date.parse('2030-01-01T00:00:00Z')
  const peer = (id: string, start: number, end: number, state: PeerRecord['state'], throughput: number, seq = 1): ObservedPeer => ({
    record: { peerId: id, modelId: 'm', arch: 'llama', multiaddrs: [`/ip4/127.0.0.1/tcp/1/p2p/${id}`], start, end, state, throughput, cacheTokensLeft: 100, dtype: 'f32', version: '0.1.0', expiresAt: now + 60_000, seq },
    latencyMs: 1.5,
    seenAt: now - 3_000
  })

  it('counts online replicas and throughput per block, lists peers by span, keeps the newest record per peer', function () {
    const report = buildHealthReport({
      modelId: 'm',
      numBlocks: 6,
      now,
      peers: [peer('Pb', 2, 4, 'online', 5), peer('Pa', 0, 3, 'online', 10), peer('Pa', 0, 3, 'online', 20, 2), peer('Pc', 0, 2, 'draining', 7), { ...peer('Px', 0, 6, 'online', 9), record: { ...peer('Px', 0, 6, 'online', 9).record, modelId: 'other' } }]
    })
    assert.deepEqual(report.blocks.map((b) => [b.peers, b.throughput]), [[1, 20], [1, 20], [2, 25], [1, 5], [0, 0], [0, 0]])
    assert.deepEqual(report.missingBlocks, [4, 5])
    assert.deepEqual(report.peers.map((p) => p.peerId), ['Pc', 'Pa', 'Pb'])
    const pa = report.peers[1]
    assert.equal(pa.throughput, 20)
    assert.equal(pa.lastSeen, new Date(now - 3_000).toISOString())
    assert.equal(report.model, 'm')
    assert.equal(report.numBlocksKnown, true)
  })

  it('infers the block count from the spans when unknown', function () {
    const report = buildHealthReport({ modelId: 'm', peers: [peer('Pa', 1, 3, 'online', 1)], now })
    assert.equal(report.numBlocks, 3)
    assert.equal(report.numBlocksKnown, false)
    assert.deepEqual(report.missingBlocks, [0])
    assert.deepEqual(buildHealthReport({ modelId: 'm', peers: [], now }).blocks, [])
  })

  it('renders coverage bars (✗ for uncovered blocks) and a peer table', function () {
    const report = buildHealthReport({ modelId: 'm', numBlocks: 4, now, peers: [peer('PeerAAAAAAAAAA', 0, 2, 'online', 10), peer('PeerBBBBBBBBBB', 0, 3, 'online', 30)] })
    const text = renderHealthTable(report, now)
    assert.match(text, /replicas {2}██▄✗/)
    assert.match(text, /tok\/s {5}██▆✗/)
    assert.match(text, /✗ uncovered: 3/)
    assert.match(text, /…AAAAAAAA {2}\[0,2\) {2}online/)
    assert.match(text, /3s ago/)
  })

  it('shows slots in use per peer, "?" for records that do not say', function () {
    const busy = peer('PeerCCCCCCCCCC', 0, 4, 'online', 10)
    busy.record = { ...busy.record, sessions: 3, maxSessions: 16 }
    const report = buildHealthReport({ modelId: 'm', numBlocks: 4, now, peers: [busy, peer('PeerDDDDDDDDDD', 0, 4, 'online', 10)] })
    assert.deepEqual(report.peers.map((p) => [p.sessions, p.maxSessions]), [[3, 16], [undefined, undefined]])
    assert.ok(!('sessions' in report.peers[1]), 'absent, not null, in health --json')
    const text = renderHealthTable(report, now)
    assert.match(text, /latency +slots +cache/)
    assert.match(text, /…CCCCCCCC .* 3\/16 /)
    assert.match(text, /…DDDDDDDD .* \?\/\? /)
  })
})

describe('serve: chat messages through the model\'s template', function () {
  const modelDir = tinyModel('gqa', shapes.gqa)
  /** a gateway backend over a model directory's tokenizer (prepareRequest never generates) */
  const backend = (dir: string): Backend => ({
    modelId: 'm',
    config: { maxPositions: 2048, vocabSize: 300 },
    tokenizer: TextTokenizer.load(dir),
    vocabulary: null,
    generate: () => { throw new Error('not used') }
  })
  const withTemplate = (template: string | null): string => {
    const dir = tempDir('serve-tpl-')
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(modelDir, f), path.join(dir, f))
    if (template !== null) writeFileSync(path.join(dir, 'chat_template.jinja'), template)
    return dir
  }
  const mistral = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'chat-templates', 'mistral-v0.3.jinja'), 'utf8')

  it('a system message and several turns become the rendered template\'s ids, with one BOS', function () {
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'A' }, { role: 'assistant', content: 'B' }, { role: 'user', content: 'C' }]
    const b = backend(withTemplate(mistral))
    const prepared = prepareRequest(b, 'chat', parseChatRequest({ messages, max_tokens: 4 }))
    assert.deepEqual(prepared.ids, b.tokenizer!.encodeChat(messages))
    assert.equal(b.tokenizer!.decode(prepared.ids, false), '<s>[INST] A[/INST] B</s>[INST] Be brief.\n\nC[/INST]')
  })

  it('a conversation the template refuses, or a model without a template: 400 naming why', function () {
    assert.throws(() => prepareRequest(backend(withTemplate(mistral)), 'chat', parseChatRequest({ messages: [{ role: 'user', content: 'A' }, { role: 'user', content: 'B' }] })),
      (err: unknown) => err instanceof InvalidRequestError && err.status === 400 && err.param === 'messages' && /roles must alternate user\/assistant/.test(err.message))
    assert.throws(() => prepareRequest(backend(withTemplate(null)), 'chat', parseChatRequest({ messages: [{ role: 'user', content: 'A' }] })),
      (err: unknown) => err instanceof InvalidRequestError && err.code === 'chat_template_missing' && /chat_template\.jinja/.test(err.message))
  })
})
