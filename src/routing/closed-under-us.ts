// One retry for exchanges that failed because the connection they used closed under them.
//
// DCUtR closes a relayed connection right after upgrading it to a direct one; a stream that
// libp2p opened on the relayed connection in that moment fails (a closed connection or muxer, a
// reset stream) although the peer is reachable: the next dial picks the direct connection. Seen
// in the NAT e2e test, both when opening an inference session and when fetching a provider's
// record (the provider was then skipped and the client found no peer for its blocks).

/** error names libp2p gives a stream or dial whose connection closed or reset underneath */
const CLOSED_UNDER_US = new Set(['ConnectionClosingError', 'ConnectionClosedError', 'MuxerClosedError', 'StreamResetError', 'StreamAbortedError', 'StreamStateError'])

/** Whether `err` says the connection went away (rather than the peer refusing or timing out). */
export function closedUnderUs (err: unknown): boolean {
  return err instanceof Error && CLOSED_UNDER_US.has(err.name)
}

/**
 * Runs `attempt`, and once more when it failed because its connection closed underneath, unless
 * `signal` has aborted. Only for exchanges that are safe to repeat from the start.
 */
export async function retryIfClosedUnderUs<T> (attempt: () => Promise<T>, signal: AbortSignal): Promise<T> {
  try {
    return await attempt()
  } catch (err) {
    if (!closedUnderUs(err) || signal.aborted) throw err
    return await attempt()
  }
}
