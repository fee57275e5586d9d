// Recent activity of the gateway, kept in small ring buffers for the dashboard
// (GET /v1/strata/events): re-routes, and where each request went.
import type { RouteHop } from '../client/generation.ts'
import type { SwarmGenerateOptions } from '../client/swarm.ts'
import type { Endpoint } from './metrics.ts'

export type RerouteEvent = Parameters<NonNullable<SwarmGenerateOptions['onReroute']>>[0]

export interface RerouteEntry {
  /** ISO 8601 */
  at: string
  requestId: string
  failedPeer: string
  reason: string
  start: number
  end: number
  replacement: RouteHop[]
  recoveryMs: number
}

export interface RequestEntry {
  /** ISO 8601, when the request finished */
  at: string
  id: string
  endpoint: Endpoint
  outcome: 'ok' | 'error' | 'aborted'
  promptTokens: number
  completionTokens: number
  finishReason: string | null
  durationMs: number
  timeToFirstTokenMs: number | null
  /** the chain the last token went through */
  route: RouteHop[]
  reroutes: number
  error?: string
}

export class Ring<T> {
  private readonly items: T[] = []
  constructor (private readonly capacity: number) {}

  push (item: T): void {
    this.items.push(item)
    if (this.items.length > this.capacity) this.items.shift()
  }

  /** newest first */
  list (): T[] {
    return [...this.items].reverse()
  }
}

export class EventLog {
  readonly reroutes = new Ring<RerouteEntry>(50)
  readonly requests = new Ring<RequestEntry>(50)

  reroute (requestId: string, e: RerouteEvent): RerouteEntry {
    const entry: RerouteEntry = {
      at: new Date().toISOString(),
      requestId,
      failedPeer: e.failedPeer,
      reason: e.reason,
      start: e.start,
      end: e.end,
      replacement: e.replacement.map((h) => ({ peer: h.peerId, start: h.start, end: h.end })),
      recoveryMs: e.recoveryMs
    }
    this.reroutes.push(entry)
    return entry
  }

  snapshot (): { reroutes: RerouteEntry[], requests: RequestEntry[] } {
    return { reroutes: this.reroutes.list(), requests: this.requests.list() }
  }
}
