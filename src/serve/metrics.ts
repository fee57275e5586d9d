// Prometheus metrics of the gateway (GET /metrics), on a registry of its own.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export type Endpoint = 'completions' | 'chat'

export class GatewayMetrics {
  readonly registry = new Registry()
  readonly requests: Counter<'route' | 'method' | 'status'>
  readonly promptTokens: Counter<'endpoint'>
  readonly generatedTokens: Counter<'endpoint'>
  readonly reroutes: Counter<'reason'>
  readonly errors: Counter<'kind'>
  readonly audits: Counter<'outcome'>
  readonly auditLiars: Counter
  readonly auditDifference: Histogram
  readonly draftTokens: Counter<'drafter' | 'outcome'>
  readonly active: Gauge
  readonly latency: Histogram<'endpoint'>
  readonly timeToFirstToken: Histogram<'endpoint'>

  constructor () {
    const registers = [this.registry]
    this.requests = new Counter({ name: 'strata_http_requests_total', help: 'HTTP requests answered, by route and status', labelNames: ['route', 'method', 'status'], registers })
    this.promptTokens = new Counter({ name: 'strata_prompt_tokens_total', help: 'prompt tokens processed', labelNames: ['endpoint'], registers })
    this.generatedTokens = new Counter({ name: 'strata_generated_tokens_total', help: 'tokens generated', labelNames: ['endpoint'], registers })
    this.reroutes = new Counter({ name: 'strata_reroutes_total', help: 'chains re-routed around a failed peer, by failure reason', labelNames: ['reason'], registers })
    this.audits = new Counter({ name: 'strata_audits_total', help: 'hop steps cross-checked against a replica (--audit-rate), by outcome: agree, liar, replica_liar, unsettled, no_replica', labelNames: ['outcome'], registers })
    this.auditLiars = new Counter({ name: 'strata_audit_liars_total', help: 'peers caught computing wrong outputs by audits (excluded from then on)', registers })
    this.auditDifference = new Histogram({
      name: 'strata_audit_relative_difference',
      help: 'relative difference between a peer\'s and its replica\'s outputs in audits (the honest spread, and liars)',
      buckets: [0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1],
      registers
    })
    this.draftTokens = new Counter({ name: 'strata_draft_tokens_total', help: 'speculative decoding (--speculate): drafted tokens fed for verification, by drafter (prompt-lookup, model) and outcome (accepted, rejected)', labelNames: ['drafter', 'outcome'], registers })
    this.errors = new Counter({ name: 'strata_errors_total', help: 'failed requests, by kind', labelNames: ['kind'], registers })
    this.active = new Gauge({ name: 'strata_active_generations', help: 'generations in progress', registers })
    this.latency = new Histogram({
      name: 'strata_generation_duration_seconds',
      help: 'wall time of a whole generation',
      labelNames: ['endpoint'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers
    })
    this.timeToFirstToken = new Histogram({
      name: 'strata_time_to_first_token_seconds',
      help: 'from the request to the first generated token (chain setup and prefill)',
      labelNames: ['endpoint'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers
    })
    collectDefaultMetrics({ register: this.registry, prefix: 'strata_' })
  }
}
