// `npx tsx scripts/audit-swarm-spread.ts`
//
// The honest spread as audits see it in a real local swarm: every span served twice (peer
// processes), the replicas differing in one way (thread count, int8 weights), generations with
// `auditRate: 1` (each step audited alone) and 0.25 (the replica catches up in one
// multi-position step), on the f32 and the f16 wire. Prints each case's audit counts and the largest
// relative difference of agreeing audits (AuditStats.maxAgreeingRel), against the tolerance.
import '../src/polyfill.ts'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { makeModel } from '../src/shards/make-model.ts'
import { Swarm } from '../src/client/swarm.ts'
import { startSwarm, stopPeers } from '../src/cli/local-swarm.ts'
import type { WireDtype } from '../src/protocol/tensor.ts'
import { auditTolerance } from '../src/routing/hop-compare.ts'

const SHAPE = { layers: 4, hidden: 512, heads: 8, kvHeads: 4, intermediate: 1376, vocab: 4096, seed: 7 }
const CASES: Array<{ name: string, replica: string[], wire: WireDtype, formats: [string, string], rate?: number }> = [
  { name: 'threads 1 vs 2, f32 wire', replica: ['--threads', '2'], wire: 'f32', formats: ['f32', 'f32'] },
  { name: 'threads 1 vs 2, f16 wire', replica: ['--threads', '2'], wire: 'f16', formats: ['f32', 'f32'] },
  { name: 'threads 1 vs 2, f32 wire, rate 0.25 (catch-ups in one step)', replica: ['--threads', '2'], wire: 'f32', formats: ['f32', 'f32'], rate: 0.25 },
  { name: 'f32 vs int8 peers, f32 wire', replica: ['--quantize', 'int8'], wire: 'f32', formats: ['f32', 'int8'] }
]

async function main (): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'strata-audit-swarm-'))
  process.env.STRATA_CACHE_DIR = path.join(dir, 'cache')
  try {
    makeModel({ ...SHAPE, out: path.join(dir, 'model') })
    const model = path.join(dir, 'model')
    process.stdout.write('| replicas | audited steps | agreed | mismatches | max relative diff | tolerance |\n|---|---|---|---|---|---|\n')
    for (const c of CASES) {
      const base = ['--threads', '1']
      const swarm = await startSwarm(model, [[0, 2], [0, 2], [2, 4], [2, 4]], [base, c.replica, base, c.replica])
      try {
        const client = await Swarm.connect({ bootstrap: [swarm.bootstrap], modelDir: model, wireDtype: c.wire, auditRate: c.rate ?? 1, auditReferee: 'replicas' })
        try {
          let audit
          for await (const e of client.generate({ ids: [1, 5, 9, 200, 7, 3000, 11, 42] }, { maxNewTokens: 32, ignoreEos: true })) if (e.event === 'done') audit = e.audit
          const a = audit!
          process.stdout.write(`| ${c.name} | ${a.sampled} | ${a.agreed} | ${a.mismatches} | ${a.maxAgreeingRel.toExponential(2)} | ${auditTolerance(c.wire, ...c.formats)} |\n`)
        } finally {
          await client.close()
        }
      } finally {
        await stopPeers(swarm.peers)
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
