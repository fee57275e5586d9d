// Part of section "recovery": a failover over an emulated wide-area link. Peer A serves the first
// half of the model and replicas B1, B2 the second, each behind a delay proxy (wan.ts). A client
// generates; at token k the replica serving its second hop is SIGKILLed, and the time the client
// took to re-route (RerouteEvent.recoveryMs: from the failure to the replacement having caught up
// on the history, one operation per token so far) is recorded. The killed replica is restarted
// before the next round. Tokens are checked against the same generation without a kill.
import { Swarm } from '../../src/client/swarm.ts'
import { loadModelConfig } from '../../src/shards/config.ts'
import { linkedPeer, stopLinked, type LinkedPeer } from './wan.ts'
import { ensureBenchModel, QUICK_SHAPE } from './model-cache.ts'
import { log, round } from './util.ts'

export interface WanRecoveryResult {
  rttMs: number
  mbps: number
  /** per kill: tokens generated before it (the history replayed), recovery ms, same tokens as without a kill */
  kills: Array<{ afterTokens: number, recoveryMs: number, identical: boolean }>
}

export async function benchWanRecovery (cacheDir: string, o: { rttMs: number, mbps: number, killAt: number[], threads: number }): Promise<WanRecoveryResult> {
  const { dir: modelDir } = await ensureBenchModel(cacheDir, QUICK_SHAPE)
  const half = loadModelConfig(modelDir).numLayers / 2
  const link = { rttMs: o.rttMs, mbps: o.mbps }
  const second = `${half}:${2 * half}`
  const peers: LinkedPeer[] = []
  const kills: WanRecoveryResult['kills'] = []
  try {
    peers.push(await linkedPeer(modelDir, `0:${half}`, link, 'wan-recovery A', o.threads))
    const bootstrap = peers[0].address
    for (const label of ['B1', 'B2']) peers.push(await linkedPeer(modelDir, second, link, `wan-recovery ${label}`, o.threads, bootstrap))
    const swarm = await Swarm.connect({ bootstrap: [bootstrap], modelDir, threads: o.threads, stepTimeoutMs: 60_000 })
    try {
      const prompt = { ids: [1, 5, 9, 13] }
      const maxNewTokens = Math.max(...o.killAt) + 4
      let expected: number[] = []
      for await (const e of swarm.generate(prompt, { maxNewTokens, ignoreEos: true })) if (e.event === 'done') expected = e.tokens
      for (const killAt of o.killAt) {
        log(`recovery: kill over a ${o.rttMs} ms link after ${killAt} tokens …`)
        let recoveryMs = NaN
        let tokens: number[] = []
        for await (const e of swarm.generate(prompt, { maxNewTokens, ignoreEos: true, onReroute: (r) => { recoveryMs = r.recoveryMs } })) {
          if (e.event === 'token' && e.index === killAt) peers.find((p) => p.peer.peerId === e.route[1].peer)?.peer.kill('SIGKILL')
          if (e.event === 'done') tokens = e.tokens
        }
        kills.push({ afterTokens: killAt, recoveryMs: round(recoveryMs, 0), identical: tokens.join() === expected.join() })
        const i = peers.findIndex((p) => !p.peer.running)
        if (i >= 0) {
          await stopLinked([peers[i]])
          peers[i] = await linkedPeer(modelDir, second, link, 'wan-recovery B (restarted)', o.threads, bootstrap)
        }
      }
    } finally {
      await swarm.close()
    }
  } finally {
    await stopLinked(peers)
  }
  return { rttMs: o.rttMs, mbps: o.mbps, kills }
}
