import type { Command } from 'commander'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { makeModel } from '../shards/make-model.ts'
import { loadModelConfig } from '../shards/config.ts'
import { LocalModel } from '../client/local-model.ts'
import { Swarm } from '../client/swarm.ts'
import { startPeer, stopPeers, type PeerProcess } from './local-swarm.ts'
import { int } from './flags.ts'
import { mulberry32 } from '../loadbalance/random.ts'
import { DEMO_SHAPE } from './demo.ts'

export interface ChaosOptions {
  modelDir: string
  /** generations to run, each with one kill (default 20) */
  rounds: number
  /** tokens per generation (default 60) */
  tokens: number
  /** random seed for kill moments and victims */
  seed: number
  log: (line: string) => void
}

export interface ChaosResult {
  rounds: number
  mismatches: number
  /** ms from the kill to the next token, per round that re-routed */
  recoveryMs: number[]
  p50: number
  p95: number
  reroutes: number
}

/**
 * Starts a redundant local swarm (two replicas of each half of the model), runs generations,
 * SIGKILLs a serving peer at a random token and restarts it, and checks every output against
 * the uninterrupted local result.
 */
export async function runChaos (o: ChaosOptions): Promise<ChaosResult> {
  const cfg = loadModelConfig(o.modelDir)
  const half = Math.floor(cfg.numLayers / 2)
  const spans: Array<[number, number]> = [[0, half], [0, half], [half, cfg.numLayers], [half, cfg.numLayers]]
  const rand = mulberry32(o.seed)
  const prompt = [1, 5, 9, 13]
  const local = await LocalModel.load(o.modelDir, { threads: 1 })
  let expected: number[] = []
  for await (const e of local.generate({ ids: prompt }, { maxNewTokens: o.tokens, ignoreEos: true })) if (e.event === 'done') expected = e.tokens
  await local.close()

  const peers: PeerProcess[] = []
  const flags = ['--threads', '1']
  peers.push(await startPeer(o.modelDir, ['--blocks', `${spans[0][0]}:${spans[0][1]}`, ...flags], 'bootstrap'))
  const bootstrap = peers[0].multiaddrs[0]
  for (const [a, b] of spans.slice(1)) peers.push(await startPeer(o.modelDir, ['--blocks', `${a}:${b}`, '--bootstrap', bootstrap, ...flags]))
  const swarm = await Swarm.connect({ bootstrap: [bootstrap], modelDir: o.modelDir, threads: 1 })
  const result: ChaosResult = { rounds: 0, mismatches: 0, recoveryMs: [], p50: 0, p95: 0, reroutes: 0 }
  try {
    for (let round = 0; round < o.rounds; round++) {
      const killAt = 2 + Math.floor(rand() * (o.tokens - 10))
      let killedAt = 0
      let victim: PeerProcess | null = null
      let recovery: number | null = null
      let tokens: number[] = []
      for await (const e of swarm.generate({ ids: prompt }, { maxNewTokens: o.tokens, ignoreEos: true })) {
        if (e.event === 'done') { tokens = e.tokens; result.reroutes += e.reroutes; break }
        if (victim !== null && recovery === null) recovery = performance.now() - killedAt
        if (e.index === killAt) {
          // never the bootstrap peer: clients and joining peers need it
          const serving = e.route.map((h) => peers.findIndex((p) => p.peerId === h.peer)).filter((i) => i > 0)
          const idx = serving[Math.floor(rand() * serving.length)]
          victim = peers[idx]
          killedAt = performance.now()
          victim.kill('SIGKILL')
        }
      }
      result.rounds++
      const same = tokens.length === expected.length && tokens.every((t, i) => t === expected[i])
      if (!same) result.mismatches++
      if (recovery !== null) result.recoveryMs.push(recovery)
      o.log(`round ${round + 1}/${o.rounds}: killed ${victim?.peerId.slice(-8) ?? '-'} at token ${killAt}, recovered in ${recovery?.toFixed(0) ?? '-'} ms, output ${same ? 'identical' : 'DIFFERENT'}`)
      if (victim !== null) {
        const i = peers.indexOf(victim)
        await victim.exited
        peers[i] = await startPeer(o.modelDir, ['--blocks', `${victim.blocks[0]}:${victim.blocks[1]}`, '--bootstrap', bootstrap, ...flags])
      }
    }
  } finally {
    await swarm.close()
    await stopPeers(peers)
  }
  const sorted = [...result.recoveryMs].sort((a, b) => a - b)
  result.p50 = percentile(sorted, 0.5)
  result.p95 = percentile(sorted, 0.95)
  return result
}

function percentile (sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]
}


export function registerChaos (program: Command): void {
  program.command('chaos')
    .description('kill and restart peers of a local swarm mid-generation; check outputs and time recovery')
    .option('--model <dir>', 'model directory (default: the demo model, generated if missing)')
    .option('--rounds <n>', 'generations, one kill each', int(1), 20)
    .option('--tokens <n>', 'tokens per generation', int(12), 60)
    .option('--seed <n>', 'seed for kill moments and victims', int(0), 1)
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const modelDir = o.model ?? path.join('.cache', 'demo-model')
      if (o.model === undefined && !existsSync(path.join(modelDir, 'config.json'))) makeModel({ ...DEMO_SHAPE, out: modelDir })
      const r = await runChaos({ modelDir, rounds: o.rounds, tokens: o.tokens, seed: o.seed, log: (l) => { if (o.json !== true) process.stderr.write(l + '\n') } })
      if (o.json === true) process.stdout.write(JSON.stringify(r) + '\n')
      else process.stdout.write(`${r.rounds} rounds, ${r.mismatches} mismatches, ${r.reroutes} re-routes; recovery (kill → next token) p50 ${r.p50.toFixed(0)} ms, p95 ${r.p95.toFixed(0)} ms\n`)
      if (r.mismatches > 0) process.exitCode = 1
    })
}
