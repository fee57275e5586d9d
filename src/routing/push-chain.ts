// Server-to-server push, client side: one step through a chain of hop sessions where each hop
// sends its output straight to the next, and only the last hop answers with hidden states.
//
//   relayed: client → hop1 → client → hop2 → client … (2 network traversals per hop)
//   push:    client → hop1 → hop2 → … → hopN → client   (1 traversal per hop, + 1)
//
// Setting up (routePush): the client still opens a session on every hop itself, so admission,
// fair shares and KV budgets are exactly as in relayed mode. It then draws a fresh random token
// per link (24 random bytes) and sends every hop a `push_route`: hop i+1 gets `from` = {hop i's
// peer id, token}, hop i gets `to` = {hop i+1's peer id, addresses, session id, the same token}.
// A hop accepts a `push` only if its token is one a session registered, the pushing peer is the
// one that session's own client named, and the session id matches; so nobody but the designated
// previous hop can feed hidden states into a session, and only the client that opened it can
// designate one (the `push_route` arrives on its own session stream). Hop i opens its push stream
// when it gets the route, so a next hop it cannot reach fails the setup, not a step. Routes go out
// to all hops at once: a peer checks a push stream at its first frame, which comes with the first
// step, after every hop has confirmed its route.
//
// A step (pushStep): the client sends the step to hop 1 and waits, at once, for the last hop's
// `result` and for a small `pushed` (step id, position; no hidden states) from every other hop.
// Those acknowledgements are off the critical path; they say which hop a failure belongs to:
// a stream that breaks or an `error` names its own peer, a `push_failed` names the hop after the
// sender (it could not reach it or was refused by it), and on a timeout the first hop without
// an acknowledgement is the one that did not answer in time.
//
// Failover (in ChainSession): in push mode the client does not see what hops after the first
// were given, so it cannot replay one hop's own inputs as relayed mode does. It keeps only the
// first hop's history (what it sends anyway: the embeddings, plus truncations), and on a failure
// opens a whole new chain (the failed peer banned, healthy ones usually chosen again), replays
// that history through it hop by hop in relayed mode, in the same step shapes as the original
// steps, and then turns push back on. Same operations in the same shapes on every hop give
// bit-identical KV caches, so the tokens stay exactly those of an uninterrupted run. Recovery
// costs a replay through every hop rather than one, which is cheap next to a generation and
// needs neither per-hop outputs sent back (twice the traffic) nor history kept on peers.
//
// Verification (`verify`) and replica audits (`auditRate`) check each hop's input against its
// output, which the client no longer sees; the chain refuses them in push mode (PushOptionsError).
import { randomBytes } from 'node:crypto'
import { PeerFailure, type RemoteSpanSession } from './remote-span.ts'
import { withTimeout } from './abort.ts'

/** Push mode was asked for together with something it cannot do. */
export class PushOptionsError extends Error {
  override name = 'PushOptionsError'
}

/** A fresh random token for one push link (32 characters). */
export function newPushToken (): string {
  return randomBytes(24).toString('base64url')
}

/** Tells every hop where its inputs come from and its outputs go: each hop pushes to the next. */
export async function routePush (hops: RemoteSpanSession[], timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const tokens = hops.map(() => newPushToken())
  await settleInOrder(hops.map(async (hop, i) => {
    const prev = hops[i - 1]
    const next = hops[i + 1]
    await hop.route({
      ...(prev !== undefined ? { from: { peerId: prev.target.peerId, token: tokens[i] } } : {}),
      ...(next !== undefined ? { to: { peerId: next.target.peerId, multiaddrs: next.target.multiaddrs, sessionId: next.sessionId, token: tokens[i + 1] } } : {})
    }, timeoutMs, signal)
  }), hops)
}

/** hidden (1, n, H) at `position` through every hop by push → the last hop's output. */
export async function pushStep (hops: RemoteSpanSession[], hidden: Float32Array, position: number, n: number, timeoutMs: number, signal?: AbortSignal): Promise<Float32Array> {
  return await withTimeout(timeoutMs, signal, async (deadline) => {
    const stepId = await hops[0].sendStep(hidden, position, deadline, signal)
    const cancel = new AbortController()
    const last = hops.length - 1
    let output: Float32Array = new Float32Array(0)
    await settleInOrder(hops.map(async (hop, i) => {
      try {
        if (i < last) await hop.awaitPushed(stepId, position + n, deadline, cancel.signal, signal)
        else output = await hop.awaitResult(stepId, position, n, deadline, cancel.signal, signal)
      } catch (err) {
        cancel.abort(new StepCancelled())
        throw err
      }
    }), hops)
    return output
  })
}

/** Another hop failed first: this one's wait was called off. */
class StepCancelled extends Error {
  override name = 'StepCancelled'
}

/** Waits for every hop's part; on failure, throws the one that names the culprit (see culpritOf). */
async function settleInOrder (parts: Array<Promise<void>>, hops: RemoteSpanSession[]): Promise<void> {
  const settled = await Promise.allSettled(parts)
  const failures = settled.flatMap((s) => s.status === 'rejected' ? [s.reason as unknown] : [])
  if (failures.length > 0) throw culpritOf(failures, hops.map((h) => h.target.peerId))
}

/**
 * Of the failures of one push step or setup (in hop order; `chain` = the hops' peer ids), the one
 * to act on: the first peer failure other than a timeout, else the first timeout (the first hop
 * that did not answer in time); a `push_failed` from hop i is turned against hop i + 1, which it
 * could not reach. Without any peer failure, the first error other than a cancelled wait.
 */
export function culpritOf (failures: unknown[], chain: string[]): unknown {
  const peerFailures = failures.filter((f): f is PeerFailure => f instanceof PeerFailure)
  const culprit = peerFailures.find((f) => f.reason !== 'timeout') ?? peerFailures[0]
  if (culprit === undefined) return failures.find((f) => !(f instanceof StepCancelled)) ?? failures[0]
  if (culprit.code === 'push_failed') {
    const next = chain[chain.indexOf(culprit.peerId) + 1]
    if (next !== undefined) return new PeerFailure(next, 'unreachable', `the previous hop could not push to it: ${culprit.message}`)
  }
  return culprit
}
