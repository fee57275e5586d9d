// Small helpers for cancellable waiting: every wait in the routing layer takes a signal.
//
// Deadlines are timer-backed AbortControllers, not AbortSignal.any([signal, AbortSignal.timeout(ms)]):
// on Node 20 the combined signal holds its sources weakly and the timeout signal's timer holds
// its signal weakly too, so once garbage collected the timeout is gone and the deadline never
// fires. Here the timer's closure holds the controller, and the timer is cleared when the
// operation ends, so neither timers nor parent listeners pile up.
import { setMaxListeners } from 'node:events'

/**
 * Runs `fn` with a signal that aborts when `signal` aborts (with its reason) or after
 * `timeoutMs` (a TimeoutError DOMException, as AbortSignal.timeout gives), whichever first.
 * The deadline ends with `fn`. The signal is meant to be shared by one operation's many
 * sub-steps (libp2p adds a listener per dial, stream and query path), so the listener-count
 * warning is lifted, as libp2p does.
 */
export async function withTimeout<T> (timeoutMs: number, signal: AbortSignal | undefined, fn: (deadline: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  setMaxListeners(Infinity, controller.signal)
  const onAbort = (): void => { controller.abort(signal?.reason) }
  const timer = setTimeout(() => { controller.abort(new DOMException(`timed out after ${timeoutMs} ms`, 'TimeoutError')) }, timeoutMs)
  if (signal?.aborted === true) onAbort()
  else signal?.addEventListener('abort', onAbort, { once: true })
  try {
    return await fn(controller.signal)
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export async function delay (ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
