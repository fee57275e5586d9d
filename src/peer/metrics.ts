// Prometheus metrics of a peer (`strata peer --metrics-port N` → GET /metrics), on a registry
// of its own: sessions, positions computed, step latency, decode batch sizes, KV-cache memory, errors by kind.
// Next to them, GET /healthz: 200 while the peer serves sessions, 503 while it joins, moves
// or drains (the container HEALTHCHECK asks it, see docker/healthcheck.js).
import { createServer, type Server } from 'node:http'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { ErrorCode } from '../protocol/messages.ts'
import type { Limit, SessionObserver } from './session-handler.ts'
import type { EvictionReason, RefusalReason } from './admission.ts'

export interface PeerGauges {
  openSessions: () => number
  kvUsedBytes: () => number
  kvCapacityBytes: () => number
}

/** What GET /healthz reports: `serving` decides 200 or 503. */
export interface PeerHealth {
  serving: boolean
  state: string
  peerId: string
  blocks: [number, number]
  openSessions: number
}

export class PeerMetrics implements SessionObserver {
  readonly registry = new Registry()
  readonly sessions: Counter<'outcome'>
  readonly positions: Counter
  readonly steps: Histogram<'kind'>
  readonly errors: Counter<'code'>
  readonly refusals: Counter<'reason' | 'phase'>
  readonly evictions: Counter<'reason'>
  readonly limits: Counter<'limit'>
  readonly batches: Histogram

  constructor (gauges: PeerGauges, info: () => { peerId: string, modelId: string, start: number, end: number, version: string }) {
    const registers = [this.registry]
    this.sessions = new Counter({ name: 'strata_peer_sessions_total', help: 'inference sessions, by outcome (opened, refused)', labelNames: ['outcome'], registers })
    this.positions = new Counter({ name: 'strata_peer_positions_total', help: 'token positions computed through this span (prefill and decode)', registers })
    this.steps = new Histogram({
      name: 'strata_peer_step_seconds',
      help: 'time to compute one step of a session on this span, by kind (prefill: several positions, decode: one)',
      labelNames: ['kind'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers
    })
    this.errors = new Counter({ name: 'strata_peer_errors_total', help: 'sessions ended with an error, by code', labelNames: ['code'], registers })
    this.refusals = new Counter({
      name: 'strata_peer_refusals_total',
      help: 'opens (phase="open") and reservation growths (phase="step") refused for lack of slots, KV budget or fair share, by reason',
      labelNames: ['reason', 'phase'],
      registers
    })
    this.evictions = new Counter({
      name: 'strata_peer_evictions_total',
      help: 'sessions closed by the peer, by reason (pressure: idle session made room for a newcomer; no_first_step: no step soon after open; idle: no message for the idle timeout)',
      labelNames: ['reason'],
      registers
    })
    this.limits = new Counter({
      name: 'strata_peer_limited_total',
      help: 'remotes held to their per-peer limits, by limit (streams: a stream reset unread; opens: an open refused busy; messages: a read delayed; banned: a remote shut out for breaking the wire protocol)',
      labelNames: ['limit'],
      registers
    })
    this.batches = new Histogram({
      name: 'strata_peer_decode_batch_size',
      help: 'decode steps of different sessions run together as one batch (1: a step run alone; rows of very different context lengths may take separate graph calls)',
      buckets: [1, 2, 4, 8, 16, 32],
      registers
    })
    new Gauge({ name: 'strata_peer_open_sessions', help: 'sessions currently open', registers, collect () { this.set(gauges.openSessions()) } })
    new Gauge({ name: 'strata_peer_kv_cache_bytes', help: 'KV-cache bytes reserved by open sessions', registers, collect () { this.set(gauges.kvUsedBytes()) } })
    new Gauge({ name: 'strata_peer_kv_cache_capacity_bytes', help: 'KV-cache memory budget', registers, collect () { this.set(gauges.kvCapacityBytes()) } })
    new Gauge({
      name: 'strata_peer_info',
      help: 'constant 1, labelled with what this peer serves now',
      labelNames: ['peer_id', 'model', 'start', 'end', 'version'],
      registers,
      collect () {
        const i = info()
        this.reset()
        this.set({ peer_id: i.peerId, model: i.modelId, start: String(i.start), end: String(i.end), version: i.version }, 1)
      }
    })
    collectDefaultMetrics({ register: this.registry, prefix: 'strata_peer_' })
  }

  opened (): void { this.sessions.inc({ outcome: 'opened' }) }

  refused (code: ErrorCode): void {
    this.sessions.inc({ outcome: 'refused' })
    this.errors.inc({ code })
  }

  ended (code: ErrorCode): void { this.errors.inc({ code }) }

  refusedShare (reason: RefusalReason, phase: 'open' | 'step'): void { this.refusals.inc({ reason, phase }) }

  evicted (reason: EvictionReason): void { this.evictions.inc({ reason }) }

  limited (limit: Limit): void { this.limits.inc({ limit }) }

  step (positions: number, seconds: number): void {
    this.positions.inc(positions)
    this.steps.observe({ kind: positions > 1 ? 'prefill' : 'decode' }, seconds)
  }

  /** one decode batch of `size` sessions' steps ran */
  batch (size: number): void { this.batches.observe(size) }

  /** Serves GET /metrics and GET /healthz on `host:port`; resolves with the bound port. */
  async listen (port: number, host: string, health: () => PeerHealth): Promise<{ server: Server, port: number }> {
    const server = createServer((req, res) => {
      const route = req.method === 'GET' ? (req.url ?? '').split('?')[0] : ''
      if (route === '/healthz') {
        const h = health()
        res.writeHead(h.serving ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: h.serving ? 'serving' : 'not serving', ...h }) + '\n')
        return
      }
      if (route !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics or GET /healthz\n')
        return
      }
      this.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': this.registry.contentType }).end(text)
      }, (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`)
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => { server.off('error', reject); resolve() })
    })
    const address = server.address()
    return { server, port: typeof address === 'object' && address !== null ? address.port : port }
  }
}
