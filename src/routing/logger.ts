// Loggers for the routing layer. Quiet by default (level from STRATA_LOG_LEVEL, default 'warn')
// and written to stderr, so that `--json` output on stdout stays machine-readable.
import { pino, type Logger } from 'pino'

export type { Logger }

let root: Logger | undefined

/** The process-wide routing logger, created on first use. */
function rootLogger (): Logger {
  root ??= pino({ name: 'strata', level: process.env.STRATA_LOG_LEVEL ?? 'warn' }, pino.destination(2))
  return root
}

/** A child logger for one component (e.g. 'routing:dht'), under `parent` when given. */
export function componentLogger (component: string, parent?: Logger): Logger {
  return (parent ?? rootLogger()).child({ component })
}
