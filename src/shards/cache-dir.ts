// Where strata keeps what it can rebuild but would rather not: measured throughput (peers) and
// quantized spans (peers and local runs alike).
import { homedir } from 'node:os'
import path from 'node:path'

/** `$STRATA_CACHE_DIR`, else `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`. */
export function defaultCacheDir (env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATA_CACHE_DIR !== undefined && env.STRATA_CACHE_DIR !== '') return env.STRATA_CACHE_DIR
  const base = env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME !== '' ? env.XDG_CACHE_HOME : path.join(homedir(), '.cache')
  return path.join(base, 'strata')
}
