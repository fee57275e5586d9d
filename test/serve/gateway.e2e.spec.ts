// `strata serve` and `strata health` over a real local swarm of peer processes, driven by the
// official openai client, raw HTTP, the health CLI and headless Chromium. 127.0.0.1 only.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import net from 'node:net'
import path from 'node:path'
import Fastify from 'fastify'
import OpenAI, { APIError, NotFoundError } from 'openai'
import { Swarm } from '../../src/client/swarm.ts'
import { GatewayServer, gatewayRoutes, HealthMonitor, SwarmHealthProbe } from '../../src/serve/index.ts'
import { modelIdFor } from '../../src/shards/config.ts'
import { TextTokenizer } from '../../src/shards/tokenizer.ts'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { tinyModel } from '../helpers/models.ts'
import { PeerProcess, STRATA_BIN, startPeer, startSwarm, stopPeers, type TestSwarm } from '../helpers/swarm.ts'

const shape = { layers: 4, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 320, seed: 11 }
const PROMPT_IDS = [1, 20, 30, 40, 50]
const NEW_TOKENS = 12
/** long enough to still be running when a peer is stopped after the first token */
const LONG_TOKENS = 150
const CHROMIUM = '/usr/bin/chromium'

interface Reference { tokens: number[], text: string }

async function localReference (dir: string, prompt: string[], n: number): Promise<Reference> {
  const r = await runCli(['generate', '--model', dir, ...prompt, '--max-new-tokens', String(n), '--temperature', '0', '--ignore-eos', '--json'])
  assert.equal(r.code, 0, r.stderr)
  const done = jsonLines(r.stdout).at(-1)!
  assert.equal(done.event, 'done')
  return { tokens: done.tokens, text: done.text }
}

async function startServe (dir: string, bootstrap: string): Promise<{ proc: PeerProcess, url: string }> {
  const child = spawn(process.execPath, [STRATA_BIN, 'serve', '--model', dir, '--bootstrap', bootstrap, '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const proc = new PeerProcess(child, 'serve')
  try {
    const line = await proc.waitFor((e) => e.event === 'listening', 90_000)
    return { proc, url: line.url }
  } catch (err) {
    proc.kill()
    throw err
  }
}

async function waitUntil<T> (what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

/** A raw HTTP/1.1 connection: sees exactly when the server answers and whether it closes. */
class RawConnection {
  private readonly socket: net.Socket
  received = ''
  closed = false
  constructor (url: string) {
    const { hostname, port } = new URL(url)
    this.socket = net.connect(Number(port), hostname)
    this.socket.on('data', (d) => { this.received += d.toString() })
    this.socket.on('close', () => { this.closed = true })
    this.socket.on('error', () => {})
  }

  /** writes and waits until the kernel took the bytes (so the server could have answered meanwhile) */
  async write (data: string | Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) => this.socket.write(data, (err) => err == null ? resolve() : reject(err)))
  }

  /** waits for a whole response (headers and its content-length of body), then consumes it */
  async response (timeoutMs = 15_000): Promise<{ status: number, headers: string, body: string }> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const m = /^HTTP\/1\.1 (\d+)[^\r]*\r\n([\s\S]*?)\r\n\r\n/.exec(this.received)
      const length = Number(/content-length: (\d+)/i.exec(m?.[2] ?? '')?.[1])
      if (m !== null && this.received.length >= m[0].length + length) {
        const body = this.received.slice(m[0].length, m[0].length + length)
        this.received = this.received.slice(m[0].length + length)
        return { status: Number(m[1]), headers: m[2].toLowerCase(), body }
      }
      if (this.closed) throw new Error(`the connection closed before a whole response: ${JSON.stringify(this.received.slice(0, 200))}`)
      if (Date.now() > deadline) throw new Error('timed out waiting for a response')
      await Promise.race([once(this.socket, 'data'), once(this.socket, 'close'), new Promise((resolve) => setTimeout(resolve, 100))])
    }
  }

  close (): void { this.socket.destroy() }
}

describe('strata serve and strata health over a real swarm', function () {
  this.timeout(60_000)
  const dir = tinyModel('serve', shape)
  const modelId = modelIdFor(dir)
  let swarm: TestSwarm | null = null
  let serve: { proc: PeerProcess, url: string } | null = null
  const extraPeers: PeerProcess[] = []
  let client: OpenAI
  let completionRef: Reference
  let longRef: Reference
  let chatRef: Reference
  let conversationRef: Reference
  const conversation = [
    { role: 'system' as const, content: 'You answer in one word.' },
    { role: 'user' as const, content: 'Hello there' },
    { role: 'assistant' as const, content: 'Hi!' },
    { role: 'user' as const, content: 'How are you?' }
  ]

  before(async function () {
    // peers, the gateway and four local reference runs start together: generous under load
    this.timeout(180_000)
    swarm = await startSwarm(dir, [[0, 2], [2, 4]])
    const bootstrap = swarm.bootstrap
    const conversationFile = path.join(mkdtempSync(path.join(tmpdir(), 'strata-conv-')), 'conversation.json')
    writeFileSync(conversationFile, JSON.stringify(conversation))
    ;[serve, longRef, chatRef, conversationRef] = await Promise.all([
      startServe(dir, bootstrap),
      localReference(dir, ['--prompt-ids', PROMPT_IDS.join(',')], LONG_TOKENS),
      localReference(dir, ['--prompt', 'Hello there', '--chat'], 8),
      localReference(dir, ['--messages', conversationFile], 8)
    ])
    // greedy decoding: the first tokens of a longer generation are the shorter generation
    const tokens = longRef.tokens.slice(0, NEW_TOKENS)
    completionRef = { tokens, text: TextTokenizer.load(dir)!.decode(tokens) }
    client = new OpenAI({ baseURL: `${serve.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 30_000 })
  })

  after(async function () {
    serve?.proc.kill('SIGKILL')
    await serve?.proc.exited
    await stopPeers([...(swarm?.peers ?? []), ...extraPeers])
  })

  const http = async (pathname: string, init?: RequestInit): Promise<{ status: number, body: any, text: string }> => {
    const res = await fetch(serve!.url + pathname, { ...init, signal: AbortSignal.timeout(30_000) })
    const text = await res.text()
    let body: any = null
    try { body = JSON.parse(text) } catch {}
    return { status: res.status, body, text }
  }
  const post = async (pathname: string, body: string, contentType = 'application/json'): Promise<{ status: number, body: any }> =>
    await http(pathname, { method: 'POST', headers: { 'content-type': contentType }, body })

  it('lists the swarm model', async function () {
    const models = await client.models.list()
    assert.deepEqual(models.data.map((m) => m.id), [modelId])
  })

  it('streams a completion with the openai client, token for token equal to local greedy generation', async function () {
    const body = { model: modelId, prompt: PROMPT_IDS, max_tokens: NEW_TOKENS, temperature: 0, stream: true as const, stream_options: { include_usage: true }, ignore_eos: true, return_token_ids: true }
    const stream = await client.completions.create(body)
    const chunks: any[] = []
    for await (const chunk of stream) chunks.push(chunk)
    const choices = chunks.flatMap((c) => c.choices)
    assert.ok(chunks.every((c) => c.object === 'text_completion' && c.id === chunks[0].id && /^cmpl-/.test(c.id) && c.model === modelId && Number.isInteger(c.created)))
    assert.deepEqual(choices.flatMap((c) => c.token_ids ?? []), completionRef.tokens)
    assert.equal(choices.map((c) => c.text).join(''), completionRef.text)
    assert.ok(choices.slice(0, -1).every((c) => c.finish_reason === null && c.logprobs === null && c.index === 0))
    assert.equal(choices.at(-1).finish_reason, 'length')
    assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: PROMPT_IDS.length, completion_tokens: NEW_TOKENS, total_tokens: PROMPT_IDS.length + NEW_TOKENS })
  })

  it('a gateway speculating with a draft model (strata serve --speculate 4 --draft-model) answers with the same tokens', async function () {
    const gateway = await GatewayServer.start({ modelDir: dir, bootstrap: [swarm!.bootstrap], port: 0, threads: 1, speculate: 4, draftModel: { dir, weightFormat: 'int8' } })
    try {
      const spec = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 30_000 })
      const r = await spec.completions.create({ model: modelId, prompt: PROMPT_IDS, max_tokens: NEW_TOKENS, temperature: 0, ignore_eos: true, return_token_ids: true } as any) as any
      assert.deepEqual(r.choices[0].token_ids, completionRef.tokens)
      assert.equal(r.choices[0].text, completionRef.text)
      const metrics = await (await fetch(`${gateway.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
      const accepted = Number(/strata_draft_tokens_total\{drafter="model",outcome="accepted"\} (\d+)/.exec(metrics)?.[1])
      assert.ok(accepted > 0, 'the draft model drafted and some drafts were accepted')
    } finally {
      await gateway.close()
    }
  })

  it('streams a chat completion (role, then content, then finish_reason) that matches the non-streamed one and local generation', async function () {
    const messages = [{ role: 'user' as const, content: 'Hello there' }]
    const stream = await client.chat.completions.create({ model: modelId, messages, max_tokens: 8, temperature: 0, stream: true, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsStreaming)
    const chunks: OpenAI.ChatCompletionChunk[] = []
    for await (const chunk of stream) chunks.push(chunk)
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && /^chatcmpl-/.test(c.id)))
    assert.equal(chunks[0].choices[0].delta.role, 'assistant')
    assert.equal(chunks.map((c) => c.choices[0].delta.content ?? '').join(''), chatRef.text)
    assert.equal(chunks.at(-1)!.choices[0].finish_reason, 'length')
    assert.deepEqual(chunks.at(-1)!.choices[0].delta, {})

    const whole = await client.chat.completions.create({ model: modelId, messages, max_tokens: 8, temperature: 0, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming)
    assert.equal(whole.object, 'chat.completion')
    assert.equal(whole.choices[0].message.role, 'assistant')
    assert.equal(whole.choices[0].message.content, chatRef.text)
    assert.equal(whole.usage?.completion_tokens, 8)
  })

  it('a system message and a multi-turn conversation go through the model\'s template, as `generate --messages` does', async function () {
    const r = await client.chat.completions.create({ model: modelId, messages: conversation, max_tokens: 8, temperature: 0, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming)
    assert.equal(r.choices[0].message.content, conversationRef.text)
    // the rendered template, encoded with its one BOS (the template writes it; none added again)
    const ids = TextTokenizer.load(dir)!.encodeChat(conversation)
    assert.equal(ids.filter((t) => t === 1).length, 1)
    assert.equal(r.usage?.prompt_tokens, ids.length)
  })

  it('cuts the text at a stop sequence and finishes with "stop"', async function () {
    const t = completionRef.text
    const k = Array.from({ length: t.length }, (_, i) => i).find((i) => i >= 2 && t.indexOf(t.slice(i, i + 2)) === i && t.slice(i, i + 2).length === 2)
    assert.ok(k !== undefined, `no usable stop sequence in ${JSON.stringify(t)}`)
    const r = await client.completions.create({ model: modelId, prompt: PROMPT_IDS, max_tokens: NEW_TOKENS, temperature: 0, stop: [t.slice(k, k + 2)], ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming)
    assert.equal(r.choices[0].text, t.slice(0, k))
    assert.equal(r.choices[0].finish_reason, 'stop')
    assert.ok(r.usage!.completion_tokens < NEW_TOKENS)
  })

  it('serves concurrent requests, each on its own chain, with the same greedy tokens', async function () {
    const one = async (): Promise<number[]> => (await post('/v1/completions', JSON.stringify({ prompt: PROMPT_IDS, max_tokens: NEW_TOKENS, temperature: 0, ignore_eos: true, return_token_ids: true }))).body.choices[0].token_ids
    const opened = swarm!.peers[0].events.filter((e) => e.event === 'session_opened').length
    const results = await Promise.all([one(), one(), one()])
    for (const tokens of results) assert.deepEqual(tokens, completionRef.tokens)
    assert.equal(swarm!.peers[0].events.filter((e) => e.event === 'session_opened').length, opened + 3, 'one session per request')
  })

  it('answers malformed requests with OpenAI-style errors and keeps serving', async function () {
    const cases: Array<[string, string, number, string | null, string?]> = [
      ['/v1/completions', '{"prompt":', 400, null, 'invalid_json'],
      ['/v1/completions', '', 400, null, 'invalid_json'],
      ['/v1/completions', '[1,2]', 400, null],
      ['/v1/completions', '{"max_tokens":3}', 400, 'prompt', 'missing_required_parameter'],
      ['/v1/completions', '{"prompt":"hi","max_tokens":-1}', 400, 'max_tokens'],
      ['/v1/completions', '{"prompt":5}', 400, 'prompt'],
      ['/v1/completions', '{"prompt":"hi","temperature":"hot"}', 400, 'temperature'],
      ['/v1/completions', '{"prompt":"hi","stream":"yes"}', 400, 'stream'],
      ['/v1/completions', '{"prompt":[1,99999]}', 400, 'prompt'],
      ['/v1/completions', '{"prompt":"hi","max_tokens":100000}', 400, 'max_tokens', 'context_length_exceeded'],
      ['/v1/completions', '{"prompt":"hi","model":"gpt-4"}', 404, 'model', 'model_not_found'],
      ['/v1/chat/completions', '{"messages":"hi"}', 400, 'messages'],
      ['/v1/chat/completions', '{"messages":[{"role":"user","content":7}]}', 400, 'messages[0].content'],
      ['/v1/chat/completions', `{"messages":[{"role":"user","content":"${'a'.repeat(2 * 1024 * 1024)}"}]}`, 413, null, 'payload_too_large']
    ]
    for (const [route, body, status, param, code] of cases) {
      const r = await post(route, body)
      const what = `${route} ${body.slice(0, 60)}`
      assert.equal(r.status, status, what)
      assert.equal(typeof r.body?.error?.message, 'string', what)
      assert.equal(r.body.error.type, 'invalid_request_error', what)
      assert.equal(r.body.error.param, param, what)
      assert.ok('code' in r.body.error, what)
      if (code !== undefined) assert.equal(r.body.error.code, code, what)
    }
    assert.equal((await post('/v1/completions', 'prompt=hi', 'application/x-www-form-urlencoded')).status, 415)
    assert.equal((await http('/v1/nope')).body.error.code, 'not_found')
    await assert.rejects(client.completions.create({ model: 'gpt-4', prompt: 'hi' }), (err: unknown) => err instanceof NotFoundError && err.code === 'model_not_found')
    assert.ok(serve!.proc.running)
    assert.equal((await http('/v1/models')).status, 200)
  })

  it('reads an oversized body before answering 413, so clients always get the JSON error (no EPIPE race)', async function () {
    // a slow upload: the 413 must come after the last byte, on a connection the server keeps
    const conn = new RawConnection(serve!.url)
    try {
      const total = 3 * 1024 * 1024
      const piece = Buffer.alloc(256 * 1024, 'a')
      await conn.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${total}\r\n\r\n`)
      for (let sent = 0; sent < total; sent += piece.length) {
        if (sent > 0) {
          await new Promise((resolve) => setTimeout(resolve, 20))
          assert.equal(conn.received, '', `answered after ${sent} of ${total} bytes, while the client was still sending`)
          assert.equal(conn.closed, false)
        }
        await conn.write(piece)
      }
      const refused = await conn.response()
      assert.equal(refused.status, 413)
      assert.equal(JSON.parse(refused.body).error.code, 'payload_too_large')
      assert.doesNotMatch(refused.headers, /connection: close/)
      await conn.write('GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n')
      assert.equal((await conn.response()).status, 200, 'the connection is kept after the 413')
    } finally {
      conn.close()
    }

    // a body declared larger than the server reads through is refused at once, and the connection closed
    const huge = new RawConnection(serve!.url)
    try {
      await huge.write(`POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${1024 * 1024 * 1024}\r\n\r\n{"prompt":"`)
      const refused = await huge.response()
      assert.equal(refused.status, 413)
      assert.match(refused.headers, /connection: close/)
    } finally {
      huge.close()
    }

    // real clients, many times over, with 2 MiB, 24 MiB and a chunked (unknown length) body
    const content = (mib: number): string => 'a'.repeat(mib * 1024 * 1024)
    for (let i = 0; i < 20; i++) {
      const r = await post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: content(2) }] }))
      assert.equal(r.status, 413, `fetch, attempt ${i}`)
      assert.equal(r.body.error.code, 'payload_too_large')
    }
    for (let i = 0; i < 3; i++) {
      await assert.rejects(client.chat.completions.create({ messages: [{ role: 'user', content: content(i === 0 ? 24 : 2) }], model: modelId }),
        (err: unknown) => err instanceof APIError && err.status === 413 && err.code === 'payload_too_large', `openai client, attempt ${i}`)
    }
    const chunk = new TextEncoder().encode('a'.repeat(64 * 1024))
    let pieces = 0
    const body = new ReadableStream({
      pull (c) {
        if (pieces++ === 0) c.enqueue(new TextEncoder().encode('{"prompt":"'))
        else if (pieces > 48) c.close()
        else c.enqueue(chunk)
      }
    })
    const res = await fetch(`${serve!.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, duplex: 'half', signal: AbortSignal.timeout(30_000) } as RequestInit)
    assert.equal(res.status, 413)
    assert.equal(((await res.json()) as any).error.code, 'payload_too_large')
  })

  it('mounts its routes in an existing fastify server (gatewayRoutes), leaving the host\'s own routes and error handler alone', async function () {
    const backend = await Swarm.connect({ bootstrap: [swarm!.bootstrap], modelDir: dir })
    const host = Fastify()
    try {
      host.get('/mine', async () => { throw new Error('host route failed') })
      host.setErrorHandler(async (_err, _req, reply) => await reply.status(599).send({ host: true }))
      const health = new HealthMonitor(new SwarmHealthProbe(backend.node, { modelId, numBlocks: shape.layers }))
      await host.register(gatewayRoutes({ backend, health }), { prefix: '/ai' })
      const r = await host.inject({ method: 'POST', url: '/ai/v1/completions', payload: { prompt: PROMPT_IDS, max_tokens: NEW_TOKENS, temperature: 0, ignore_eos: true, return_token_ids: true } })
      assert.equal(r.statusCode, 200, r.body)
      assert.deepEqual(r.json().choices[0].token_ids, completionRef.tokens)
      const bad = await host.inject({ method: 'POST', url: '/ai/v1/completions', payload: { prompt: 5 } })
      assert.equal(bad.statusCode, 400)
      assert.equal(bad.json().error.param, 'prompt')
      assert.equal((await host.inject('/ai/health')).json().model, modelId)
      const own = await host.inject('/mine')
      assert.deepEqual([own.statusCode, own.json()], [599, { host: true }])
    } finally {
      await host.close()
      await backend.close()
    }
  })

  it('aborts the generation when the client disconnects, closing the peers\' sessions', async function () {
    const peers = swarm!.peers
    const closedBefore = peers.map((p) => p.events.filter((e) => e.event === 'session_closed').length)
    const controller = new AbortController()
    const res = await fetch(`${serve!.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: PROMPT_IDS, max_tokens: 1500, temperature: 0, ignore_eos: true, stream: true }),
      signal: controller.signal
    })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
    const reader = res.body!.getReader()
    const first = new TextDecoder().decode((await reader.read()).value)
    assert.match(first, /^data: \{"id":"cmpl-/)
    controller.abort()
    const closed = await Promise.all(peers.map(async (p, i) => await p.waitFor((e) => e.event === 'session_closed' && p.events.filter((x) => x.event === 'session_closed').length > closedBefore[i], 10_000)))
    for (const e of closed) assert.ok(e.steps < 1000, `the session ended early (${e.steps} steps)`)
    const metrics = await waitUntil('the aborted generation to be counted', async () => {
      const text = (await http('/metrics')).text
      return /strata_errors_total\{kind="client_disconnect"\} [1-9]/.test(text) && /^strata_active_generations 0$/m.test(text) ? text : undefined
    }, 5_000)
    assert.match(metrics, /strata_errors_total\{kind="client_disconnect"\}/)
  })

  it('exposes Prometheus metrics, the health report and recent events', async function () {
    const metrics = await http('/metrics')
    assert.equal(metrics.status, 200)
    const generated = Number(/^strata_generated_tokens_total\{endpoint="completions"\} (\d+)/m.exec(metrics.text)?.[1])
    assert.ok(generated >= 4 * NEW_TOKENS, `generated tokens counted (${generated})`)
    for (const name of ['strata_http_requests_total', 'strata_reroutes_total', 'strata_errors_total', 'strata_generation_duration_seconds', 'strata_time_to_first_token_seconds']) {
      assert.match(metrics.text, new RegExp(`# TYPE ${name} `), name)
    }
    assert.match(metrics.text, /strata_time_to_first_token_seconds_count\{endpoint="completions"\} [1-9]/)
    assert.match(metrics.text, /strata_http_requests_total\{route="\/v1\/completions",method="POST",status="400"\} [1-9]/)

    const health = await http('/health')
    assert.equal(health.status, 200)
    assert.equal(health.body.model, modelId)
    assert.deepEqual(health.body.blocks.map((b: any) => [b.index, b.peers]), [[0, 1], [1, 1], [2, 1], [3, 1]])
    assert.deepEqual(health.body.peers.map((p: any) => [p.peerId, p.start, p.end, p.state]), swarm!.peers.map((p) => [p.peerId, p.blocks[0], p.blocks[1], 'online']))
    for (const p of health.body.peers) {
      assert.ok(p.throughput > 0 && p.multiaddrs.length > 0 && typeof p.version === 'string')
      assert.ok(Math.abs(Date.parse(p.lastSeen) - Date.now()) < 30_000)
    }

    const events = await http('/v1/strata/events')
    const done = events.body.requests.find((r: any) => r.outcome === 'ok' && r.endpoint === 'completions')
    assert.deepEqual(done.route.map((h: any) => [h.peer, h.start, h.end]), swarm!.peers.map((p) => [p.peerId, p.blocks[0], p.blocks[1]]))
    assert.ok(events.body.requests.some((r: any) => r.outcome === 'aborted'))
    assert.deepEqual(events.body.reroutes, [])
  })

  it('renders the dashboard in headless Chromium with the peers table filled', async function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`      (skipped: ${CHROMIUM} is missing; install it with apt-get install -y chromium)`)
      this.skip()
    }
    const page = await http('/')
    assert.match(page.text, /^<!doctype html>/)
    assert.doesNotMatch(page.text, /<(script|link|img)[^>]+(src|href)=/i, 'no external assets')
    const work = mkdtempSync(path.join(tmpdir(), 'strata-chromium-'))
    try {
      const chromium = (args: string[]): string => {
        const r = spawnSync(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run',
          `--user-data-dir=${mkdtempSync(path.join(work, 'profile-'))}`, '--virtual-time-budget=5000', ...args, `${serve!.url}/`], { encoding: 'utf8', timeout: 30_000 })
        assert.equal(r.status, 0, r.stderr)
        return r.stdout
      }
      const dom = chromium(['--dump-dom'])
      for (const p of swarm!.peers) assert.ok(dom.includes(`data-peer-id="${p.peerId}"`), `peer ${p.peerId} is in the table`)
      assert.match(dom, /all blocks covered/)
      assert.equal((dom.match(/data-block="/g) ?? []).length, 4, 'one coverage bar per block')
      const png = path.join(work, 'dashboard.png')
      chromium([`--screenshot=${png}`, '--window-size=1280,900', '--hide-scrollbars'])
      const bytes = readFileSync(png)
      assert.deepEqual([...bytes.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG')
      assert.deepEqual([bytes.readUInt32BE(16), bytes.readUInt32BE(20)], [1280, 900])
      assert.ok(statSync(png).size > 20_000, `a non-trivial screenshot (${statSync(png).size} bytes)`)
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  })

  it('strata health shows a peer that joins (JSON, --watch table, gateway)', async function () {
    const bootstrap = swarm!.bootstrap
    const extra = await startPeer(dir, ['--blocks', '0:4', '--bootstrap', bootstrap], 'peer[0,4)')
    extraPeers.push(extra)
    const [withExtra, screens] = await Promise.all([
      runCli(['health', '--bootstrap', bootstrap, '--model', dir, '--json'], 30_000),
      watchHealth(bootstrap, modelId)
    ])
    assert.equal(withExtra.code, 0, withExtra.stderr)
    const report = JSON.parse(withExtra.stdout)
    assert.equal(report.model, modelId)
    assert.deepEqual(report.blocks.map((b: any) => b.peers), [2, 2, 2, 2])
    const joined = report.peers.find((p: any) => p.peerId === extra.peerId)
    assert.deepEqual([joined?.start, joined?.end, joined?.state], [0, 4, 'online'])
    const screen = screens.at(-1)!
    assert.ok(screen.startsWith(`model ${modelId} · 4 blocks (inferred from spans) · 3 peers (3 online)`), screen)
    assert.match(screen, /^replicas {2}████$/m)
    assert.ok(screen.includes(`…${extra.peerId.slice(-8)}  [0,4)  online`), screen)
    await waitUntil('the gateway to see the new peer', async () => (await http('/health')).body.peers.some((p: any) => p.peerId === extra.peerId) ? true : undefined)
  })

  it('re-routes a stream around a peer stopped mid-generation (SIGTERM), same tokens; health drops the peer', async function () {
    // the stream runs through [0,2)+[2,4) or through [0,4): stop the non-bootstrap peer it uses
    const peers = [...swarm!.peers, ...extraPeers]
    const opened = peers.map((p) => p.events.filter((e) => e.event === 'session_opened').length)
    const res = await fetch(`${serve!.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: PROMPT_IDS, max_tokens: LONG_TOKENS, temperature: 0, ignore_eos: true, stream: true, return_token_ids: true }),
      signal: AbortSignal.timeout(30_000)
    })
    const reader = res.body!.getReader()
    let sse = new TextDecoder().decode((await reader.read()).value)
    const used = peers.filter((p, i) => p.events.filter((e) => e.event === 'session_opened').length > opened[i])
    const victim = used.find((p) => p !== swarm!.peers[0])!
    assert.ok(victim !== undefined, 'the stream uses a peer other than the bootstrap peer')
    victim.kill('SIGTERM')
    for (let r = await reader.read(); r.done !== true; r = await reader.read()) sse += new TextDecoder().decode(r.value)
    const chunks = sse.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)))
    assert.ok(sse.trimEnd().endsWith('data: [DONE]'), sse.slice(-300))
    assert.deepEqual(chunks.flatMap((c) => c.choices[0].token_ids ?? []), longRef.tokens, 'identical tokens after the re-route')
    assert.equal(await Promise.race([victim.exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), 15_000))]), 0, victim.stderr)

    const events = (await http('/v1/strata/events')).body
    assert.equal(events.reroutes[0]?.failedPeer, victim.peerId)
    assert.equal(events.reroutes[0]?.reason, 'draining')
    assert.equal(events.requests[0].reroutes, 1)
    assert.match((await http('/metrics')).text, /strata_reroutes_total\{reason="draining"\} 1/)

    const after = await runCli(['health', '--bootstrap', swarm!.bootstrap, '--json'], 30_000)
    assert.equal(after.code, 0, after.stderr)
    const left = JSON.parse(after.stdout)
    assert.equal(left.model, modelId, 'model discovered from the bootstrap peer')
    assert.ok(!left.peers.some((p: any) => p.peerId === victim.peerId), 'the stopped peer is gone')
    const remaining = peers.filter((p) => p !== victim)
    assert.deepEqual(left.blocks.map((b: any) => b.peers), [0, 1, 2, 3].map((b) => remaining.filter((p) => p.blocks[0] <= b && b < p.blocks[1]).length))
    await waitUntil('the gateway to drop the stopped peer', async () => (await http('/health')).body.peers.some((p: any) => p.peerId === victim.peerId) ? undefined : true)
  })

  it('strata health fails with a clear message when no bootstrap peer answers', async function () {
    const nobody = `/ip4/127.0.0.1/tcp/9/p2p/${swarm!.peers[0].peerId}`
    const r = await runCli(['health', '--bootstrap', nobody, '--connect-timeout-ms', '1000', '--json'], 20_000)
    assert.equal(r.code, 1)
    assert.match(r.stderr, /could not reach any bootstrap peer .*timed out after 1000 ms/)
    assert.equal(r.stdout, '')
  })

  it('shuts down cleanly on SIGTERM', async function () {
    serve!.proc.kill('SIGTERM')
    assert.equal(await Promise.race([serve!.proc.exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), 10_000))]), 0, serve!.proc.stderr)
  })
})

/** `strata health --watch` (text, into a pipe: reports one after another, no escapes): collects two, then interrupts it. */
async function watchHealth (bootstrap: string, modelId: string): Promise<string[]> {
  const child = spawn(process.execPath, [STRATA_BIN, 'health', '--bootstrap', bootstrap, '--model-id', modelId, '--watch', '--interval-ms', '300'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  try {
    const screens = await new Promise<string[]>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`health --watch: no two screens within 30 s\n${out}\n${stderr}`)) }, 30_000)
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        // a report is complete once the next one begins
        const parts = out.split(/^(?=model )/m)
        if (parts.length >= 3) { clearTimeout(timer); resolve(parts.slice(0, 2)) }
      })
    })
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGINT')
    assert.equal(await exited, 0, stderr)
    assert.ok(!out.includes('\x1b'), 'no escape sequences into a pipe')
    return screens
  } finally {
    child.kill('SIGKILL')
  }
}
