// Small helpers for cancellable waiting: every wait in the routing layer takes a signal.
import { setMaxListeners } from 'node:events'

/**
 * A signal that aborts when `signal` aborts or after `timeoutMs` (a TimeoutError), whichever
 * first. It is meant to be shared by one operation's many sub-steps (libp2p adds a listener per
 * dial, stream and query path), so the listener-count warning is lifted, as libp2p does.
 */
export function withTimeout (timeoutMs: number, signal?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs)
  const combined = signal == null ? timeout : AbortSignal.any([signal, timeout])
  setMaxListeners(Infinity, combined)
  return combined
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export async function delay (ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
