#!/usr/bin/env node
// The container HEALTHCHECK (see Dockerfile): asks the strata process in this container whether
// it serves. Exit 0 when it answers 200, 1 when it answers anything else or nothing (not started,
// crashed, joining, draining). A peer answers on its metrics port (STRATA_METRICS_PORT, which
// the image sets) at /healthz; for a gateway set STRATA_HEALTH_URL=http://127.0.0.1:8080/health.
const url = process.env.STRATA_HEALTH_URL ?? `http://127.0.0.1:${process.env.STRATA_METRICS_PORT ?? '9100'}/healthz`
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) })
  const body = (await res.text()).trim().slice(0, 300)
  process.stdout.write(`${url}: ${res.status} ${body}\n`)
  process.exit(res.status === 200 ? 0 : 1)
} catch (err) {
  process.stdout.write(`${url}: ${err.cause?.code ?? err.message}\n`)
  process.exit(1)
}
