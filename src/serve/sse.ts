// Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk, `data: [DONE]` last.
import type { ServerResponse } from 'node:http'
import { ClientDisconnectedError, type ApiError } from './errors.ts'

export class SseWriter {
  constructor (private readonly res: ServerResponse) {}

  open (): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
  }

  send (data: object): void {
    if (!this.res.destroyed) this.res.write(`data: ${JSON.stringify(data)}\n\n`)
  }

  done (): void {
    if (this.res.destroyed) return
    this.res.write('data: [DONE]\n\n')
    this.res.end()
  }

  /** a failure after the stream began: an OpenAI error object as the last event */
  fail (err: ApiError): void {
    this.send(err.body())
    this.res.end()
  }
}

/** Aborts (with ClientDisconnectedError) when the connection closes before the response is complete. */
export function disconnectSignal (res: ServerResponse): AbortSignal {
  const controller = new AbortController()
  res.once('close', () => {
    if (!res.writableFinished) controller.abort(new ClientDisconnectedError())
  })
  return controller.signal
}
