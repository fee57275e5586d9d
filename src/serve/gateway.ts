// The HTTP gateway: OpenAI-compatible completions and chat completions over the swarm, models,
// health, Prometheus metrics, recent events and the dashboard page.
import { performance } from 'node:perf_hooks'
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify'
import { componentLogger, type Logger } from '../routing/logger.ts'
import { ApiError, ClientDisconnectedError, InvalidRequestError } from './errors.ts'
import { DASHBOARD_HTML } from './dashboard.ts'
import { DEFAULT_DRAIN_LIMITS, drainRequest, type DrainLimits } from './drain.ts'
import { EventLog } from './events.ts'
import type { HealthSource } from './health-probe.ts'
import { GatewayMetrics, type Endpoint } from './metrics.ts'
import { chatChunk, chatResponse, completionChunk, completionResponse, newMeta, usage, usageChunk, type ChoiceExtras, type FinishReason, type ResponseMeta, type Usage } from './openai-format.ts'
import { ChoiceView, mergeRuns, type IndexedEvent } from './choices.ts'
import { parseChatRequest, parseCompletionRequest } from './requests.ts'
import { prepareRequest, runRequest, toApiError, type Backend, type PreparedRequest } from './run.ts'
import { SseWriter, disconnectSignal } from './sse.ts'

/** request bodies above this are refused with 413 */
export const DEFAULT_BODY_LIMIT = 1024 * 1024

export interface GatewayOptions {
  backend: Backend
  health: HealthSource
  metrics?: GatewayMetrics
  events?: EventLog
  bodyLimit?: number
  /** how much of a refused body is read and discarded before answering; default 64 MiB, 10 s */
  drainLimits?: DrainLimits
  logger?: Logger
}

export type Gateway = ReturnType<typeof createGateway>

/** The gateway as its own fastify server (what `strata serve` listens with). */
export function createGateway (opts: GatewayOptions) {
  const metrics = opts.metrics ?? new GatewayMetrics()
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT
  // on close, open streams are cut: their generations abort and free the peers' caches
  const app = Fastify({ bodyLimit, loggerInstance: componentLogger('serve', opts.logger),
    logController: new LogController({ disableRequestLogging: true }), forceCloseConnections: true })
  app.setNotFoundHandler((req, reply) => {
    const api = new ApiError(404, `Invalid URL (${req.method} ${req.url})`, 'invalid_request_error', null, 'not_found')
    metrics.errors.inc({ kind: api.kind })
    reply.raw.once('close', () => { metrics.requests.inc({ route: 'unmatched', method: req.method, status: 404 }) })
    void reply.status(404).send(api.body())
  })
  void app.register(gatewayRoutes({ ...opts, metrics }))
  return app
}

/**
 * The gateway's routes (OpenAI API, health, metrics, events, dashboard) as a fastify plugin, to
 * mount in an existing fastify server: `app.register(gatewayRoutes({ backend: swarm, health }))`.
 * Its error handling and body limit apply to its own routes only.
 */
export function gatewayRoutes (opts: GatewayOptions): FastifyPluginAsync {
  return async (app) => {
    registerRoutes(app, opts)
  }
}

function registerRoutes (app: FastifyInstance, opts: GatewayOptions): void {
  const log = componentLogger('serve', opts.logger)
  const metrics = opts.metrics ?? new GatewayMetrics()
  const events = opts.events ?? new EventLog()
  const { backend } = opts
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT
  const startedAt = Math.floor(Date.now() / 1000)

  app.addHook('onRequest', async (req, reply) => {
    // counted on close so that streamed (hijacked) responses are counted too
    reply.raw.once('close', () => {
      metrics.requests.inc({ route: req.routeOptions.url ?? 'unmatched', method: req.method, status: reply.raw.statusCode })
    })
  })

  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    if (err instanceof ClientDisconnectedError) {
      metrics.errors.inc({ kind: 'client_disconnect' })
      return
    }
    const api = err instanceof ApiError ? err : fromFastifyError(err, bodyLimit)
    metrics.errors.inc({ kind: api.kind })
    if (api.status >= 500) log.warn({ url: req.url, err: err.message }, 'request failed')
    // a refused body is still on its way: answering now and closing would reset the connection
    // under the client's upload, so it is read to its end first and the connection kept
    if (await drainRequest(req.raw, opts.drainLimits ?? DEFAULT_DRAIN_LIMITS)) reply.removeHeader('connection')
    else reply.header('connection', 'close')
    return await reply.status(api.status).send(api.body())
  })

  app.get('/', async (_req, reply) => await reply.type('text/html; charset=utf-8').send(DASHBOARD_HTML))

  app.get('/health', async (_req, reply) => {
    const report = await opts.health.report()
    // 503 while some block has no online peer, so load balancers can use it as a readiness probe
    return await reply.status(report.numBlocks > 0 && report.missingBlocks.length === 0 ? 200 : 503).send(report)
  })

  app.get('/metrics', async (_req, reply) => await reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()))

  app.get('/v1/strata/events', async () => events.snapshot())

  const model = (): object => ({ id: backend.modelId, object: 'model', created: startedAt, owned_by: 'strata', max_model_len: backend.config.maxPositions })
  app.get('/v1/models', async () => ({ object: 'list', data: [model()] }))
  app.get<{ Params: { model: string } }>('/v1/models/:model', async (req, reply) => {
    if (req.params.model !== backend.modelId) {
      throw new ApiError(404, `The model '${req.params.model}' does not exist`, 'invalid_request_error', 'model', 'model_not_found')
    }
    return await reply.send(model())
  })

  const generation = (endpoint: Endpoint) => async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const startedAt = performance.now()
    const parsed = endpoint === 'chat' ? parseChatRequest(req.body) : parseCompletionRequest(req.body)
    const prepared = prepareRequest(backend, endpoint, parsed)
    const meta = newMeta(endpoint === 'chat' ? 'chat' : 'completion', backend.modelId)
    // a failed choice ends the others too
    const failed = new AbortController()
    const signal = AbortSignal.any([disconnectSignal(reply.raw), failed.signal])
    const runs = Array.from({ length: parsed.n }, (_, i) => runRequest(backend, prepared, { id: meta.id, signal, startedAt, metrics, events, log }, i))
    const choices = runs.map((_, i) => new ChoiceView(i, prepared, backend.vocabulary))
    const merged = mergeRuns(runs, () => { failed.abort(new ClientDisconnectedError()) })
    if (parsed.stream) await stream(merged, choices, prepared, meta, reply)
    else await reply.send(await collect(merged, choices, prepared, meta))
  }
  app.post('/v1/completions', { bodyLimit }, generation('completions'))
  app.post('/v1/chat/completions', { bodyLimit }, generation('chat'))

  /** Streams chunks; the headers wait for the first event so that early failures keep their status code. */
  async function stream (run: AsyncGenerator<IndexedEvent>, choices: ChoiceView[], req: PreparedRequest, meta: ResponseMeta, reply: FastifyReply): Promise<void> {
    const first = await run.next()
    reply.hijack()
    const sse = new SseWriter(reply.raw)
    const chat = req.endpoint === 'chat'
    const chunk = (text: string, finish: FinishReason | null, extras: ChoiceExtras): object => chat
      ? chatChunk(meta, finish === null ? { content: text } : {}, finish, extras)
      : completionChunk(meta, text, finish, extras)
    try {
      sse.open()
      if (chat) for (const c of choices) sse.send(chatChunk(meta, { role: 'assistant', content: '' }, null, { index: c.index }))
      for (let r = first; r.done !== true; r = await run.next()) {
        const { index, event } = r.value
        const choice = choices[index]
        const piece = choice.apply(event)
        if (piece !== null) sse.send(chunk(piece.text, null, piece.extras))
        if (event.type === 'end') sse.send(chunk('', event.finishReason, { index }))
      }
      if (req.request.includeUsage) sse.send(usageChunk(chat ? 'chat' : 'completion', meta, totalUsage(req, choices)))
      sse.done()
    } catch (err) {
      const api = err instanceof ClientDisconnectedError ? null : toApiError(err)
      metrics.errors.inc({ kind: api?.kind ?? 'client_disconnect' })
      if (api !== null) {
        log.warn({ id: meta.id, err: api.message }, 'stream failed')
        sse.fail(api)
      }
    } finally {
      await run.return(undefined)
    }
  }

  async function collect (run: AsyncGenerator<IndexedEvent>, choices: ChoiceView[], req: PreparedRequest, meta: ResponseMeta): Promise<object> {
    for await (const { index, event } of run) choices[index].apply(event)
    const whole = choices.map((c) => {
      if (c.finish === null) throw new Error('a generation ended without a summary')
      return { text: c.text, finish: c.finish, extras: c.extras() }
    })
    const u = totalUsage(req, choices)
    return req.endpoint === 'chat' ? chatResponse(meta, whole, u) : completionResponse(meta, whole, u)
  }
}

/** one prompt, every choice's tokens */
function totalUsage (req: PreparedRequest, choices: ChoiceView[]): Usage {
  return usage(req.ids.length, choices.reduce((n, c) => n + c.completionTokens, 0))
}

/** Fastify's own errors (body parsing, limits) in OpenAI's shape. */
function fromFastifyError (err: FastifyError, bodyLimit: number): ApiError {
  const status = err.statusCode ?? 500
  if (status >= 500) return toApiError(err)
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return new ApiError(413, `the request body is larger than the limit of ${bodyLimit} bytes`, 'invalid_request_error', null, 'payload_too_large')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return new ApiError(415, 'the request body must be JSON (content-type: application/json)', 'invalid_request_error', null, 'unsupported_media_type')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY': return new InvalidRequestError('the request body is empty: expected a JSON object', null, 'invalid_json')
    case 'FST_ERR_CTP_INVALID_JSON_BODY': return new InvalidRequestError(`the request body is not valid JSON: ${err.message}`, null, 'invalid_json')
    default: return new ApiError(status, err.message, 'invalid_request_error', null, err.code?.toLowerCase() ?? null)
  }
}
