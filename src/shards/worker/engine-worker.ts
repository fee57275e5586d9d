// Runs inside a worker thread: owns one SpanEngine or HeadEngine and answers calls in order.
import '../../polyfill.ts'
import { parentPort } from 'node:worker_threads'
import { SpanEngine } from '../span-engine.ts'
import { HeadEngine } from '../head-engine.ts'
import type { BatchResult, Call, Request, Response } from './rpc.ts'

if (parentPort === null) throw new Error('engine-worker must run in a worker thread')
const port = parentPort
let span: SpanEngine | null = null
let head: HeadEngine | null = null

function need<T> (engine: T | null, what: string): T {
  if (engine === null) throw new Error(`no ${what} engine loaded in this worker`)
  return engine
}

async function handle (call: Call): Promise<{ value: unknown, transfer?: ArrayBuffer[] }> {
  switch (call.op) {
    case 'load':
      if (call.load.kind === 'span') {
        span = await SpanEngine.load(call.load.modelDir, call.load.options)
        return { value: { weightFormat: span.weightFormat, kvBytesPerToken: span.kvBytesPerToken, bytesRead: span.bytesRead, cacheOutcome: span.cacheOutcome, config: span.config } }
      }
      head = await HeadEngine.load(call.load.modelDir, call.load.options)
      return { value: { config: head.config } }
    case 'open':
      need(span, 'span').open(call.sessionId, call.maxLength, call.exitEnd)
      return { value: null }
    case 'step': {
      const out = await need(span, 'span').step(call.sessionId, call.hidden, call.position)
      const copy = out.slice()
      return { value: copy, transfer: [copy.buffer] }
    }
    case 'stepBatch': {
      // each row copied into a buffer of its own (a lone step's output is onnxruntime's), handed over
      const outs = (await need(span, 'span').stepBatch(call.steps)).map((o) => o instanceof Error ? o : o.slice())
      const value: BatchResult = outs.map((o) => o instanceof Error ? { ok: false, error: { name: o.name, message: o.message } } : { ok: true, hidden: o })
      return { value, transfer: outs.flatMap((o) => o instanceof Error ? [] : [o.buffer as ArrayBuffer]) }
    }
    case 'truncate':
      need(span, 'span').truncate(call.sessionId, call.length)
      return { value: null }
    case 'close':
      return { value: need(span, 'span').close(call.sessionId) }
    case 'embed': {
      const out = need(head, 'head').embed(call.tokens)
      return { value: out, transfer: [out.buffer as ArrayBuffer] }
    }
    case 'logits': {
      const out = (await need(head, 'head').logits(call.hidden, call.allRows)).slice()
      return { value: out, transfer: [out.buffer as ArrayBuffer] }
    }
    case 'dispose':
      await span?.dispose()
      await head?.dispose()
      span = null
      head = null
      return { value: null }
  }
}

// Calls are processed strictly one after another: a session's steps must not interleave.
let queue: Promise<void> = Promise.resolve()
port.on('message', (req: Request) => {
  queue = queue.then(async () => {
    let res: Response
    let transfer: ArrayBuffer[] = []
    try {
      const r = await handle(req.call)
      res = { id: req.id, ok: true, value: r.value }
      transfer = r.transfer ?? []
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err))
      res = { id: req.id, ok: false, error: { name: e.name, message: e.message } }
    }
    port.postMessage(res, transfer)
  })
})
