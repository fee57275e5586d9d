// Early answers (413 and other body errors) must not race the client's upload. An HTTP server that
// answers and closes while the client is still sending resets the connection: the client's write
// fails (EPIPE/ECONNRESET) and it may never read the answer. Reading and discarding the rest of the
// body first lets the client finish sending and then read the status and JSON error.
import type { IncomingMessage } from 'node:http'

export interface DrainLimits {
  /** most bytes read and discarded before giving up, bytes */
  maxBytes: number
  /** longest wait for the rest of the body, ms */
  timeoutMs: number
}

/** 64 MiB or 10 s: enough for any client that sent a body a few times too large, not a free sink */
export const DEFAULT_DRAIN_LIMITS: DrainLimits = { maxBytes: 64 * 1024 * 1024, timeoutMs: 10_000 }

/**
 * Reads and discards what is left of a request body. Resolves true once the body has ended (the
 * connection can then be kept alive), false when it is larger than `maxBytes` (by its declared
 * length or as read), slower than `timeoutMs`, or the connection failed: the caller then closes it.
 */
export async function drainRequest (req: IncomingMessage, limits: DrainLimits = DEFAULT_DRAIN_LIMITS): Promise<boolean> {
  if (req.complete || req.readableEnded) return true
  if (Number(req.headers['content-length']) > limits.maxBytes) return false
  return await new Promise<boolean>((resolve) => {
    let read = 0
    const finish = (ended: boolean): void => {
      clearTimeout(timer)
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onFail)
      req.off('close', onClose)
      resolve(ended)
    }
    const onData = (chunk: Buffer): void => {
      read += chunk.length
      if (read > limits.maxBytes) finish(false)
    }
    const onEnd = (): void => finish(true)
    const onFail = (): void => finish(false)
    const onClose = (): void => finish(req.complete)
    const timer = setTimeout(onFail, limits.timeoutMs)
    req.on('data', onData)
    req.once('end', onEnd)
    req.once('error', onFail)
    req.once('close', onClose)
    req.resume()
  })
}
