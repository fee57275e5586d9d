// Test access to the local-swarm process helpers (shared with the demo and chaos commands).
import { tempDir } from './models.ts'

export * from '../../src/cli/local-swarm.ts'

/**
 * Registers mocha hooks giving every peer the suite starts one throughput cache (a temp dir) in
 * place of the user's: equal announced throughputs make placement independent of timing noise.
 */
export function useSharedThroughputCache (): void {
  let saved: string | undefined
  before(function () {
    saved = process.env.STRATA_CACHE_DIR
    process.env.STRATA_CACHE_DIR = tempDir('throughput-cache-')
  })
  after(function () {
    if (saved === undefined) delete process.env.STRATA_CACHE_DIR
    else process.env.STRATA_CACHE_DIR = saved
  })
}
