import type { Command } from 'commander'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { makeModel } from '../shards/make-model.ts'
import { LocalModel } from '../client/local-model.ts'
import { Swarm } from '../client/swarm.ts'
import { startPeer, stopPeers, type PeerProcess } from './local-swarm.ts'
import { cyan } from './terminal.ts'

export const DEMO_SHAPE = { layers: 8, hidden: 256, heads: 8, kvHeads: 2, intermediate: 688, vocab: 1024, seed: 2026 }

const say = (line: string): void => { process.stderr.write(cyan(process.stderr, `▶ ${line}`) + '\n') }

export function registerDemo (program: Command): void {
  program.command('demo')
    .description('end to end: generate a model, start a local swarm of 3 peers, stream a generation, kill a peer mid-way, show the re-route')
    .option('--dir <dir>', 'where the demo model lives', path.join('.cache', 'demo-model'))
    .option('--prompt <text>', 'prompt', 'Once upon a time')
    .option('--tokens <n>', 'tokens to generate', (v) => Number(v), 48)
    .action(async (o) => {
      process.env.STRATA_LOG_LEVEL ??= 'error' // the demo narrates re-routes itself
      if (!existsSync(path.join(o.dir, 'config.json'))) {
        say(`generating a random-weight ${DEMO_SHAPE.layers}-block Llama model in ${o.dir}`)
        makeModel({ ...DEMO_SHAPE, out: o.dir })
      }
      const peers: PeerProcess[] = []
      const onExit = (): void => { for (const p of peers) p.kill('SIGKILL') }
      process.once('exit', onExit)
      try {
        say('starting peer A (blocks 0-3, bootstrap), peers B and C (blocks 4-7 each)')
        peers.push(await startPeer(o.dir, ['--blocks', '0:4'], 'A'))
        const bootstrap = peers[0].multiaddrs[0]
        peers.push(...await Promise.all([startPeer(o.dir, ['--blocks', '4:8', '--bootstrap', bootstrap], 'B'), startPeer(o.dir, ['--blocks', '4:8', '--bootstrap', bootstrap], 'C')]))
        const names = new Map(peers.map((p, i) => [p.peerId, 'ABC'[i]]))
        for (const p of peers) say(`peer ${names.get(p.peerId)} ${p.peerId.slice(0, 16)}… serves [${p.blocks[0]}, ${p.blocks[1]}) at ${p.multiaddrs[0]}`)

        const swarm = await Swarm.connect({ bootstrap: [bootstrap], modelDir: o.dir })
        let tokens: number[] = []
        try {
          say(`generating ${o.tokens} tokens for ${JSON.stringify(o.prompt)} through the swarm`)
          const killAt = Math.floor(o.tokens / 3)
          for await (const e of swarm.generate({ text: o.prompt }, {
            maxNewTokens: o.tokens,
            ignoreEos: true,
            onReroute: (r) => { process.stdout.write('\n'); say(`re-routed blocks [${r.start}, ${r.end}) around dead peer ${names.get(r.failedPeer)} (${r.reason}) to ${r.replacement.map((h) => names.get(h.peerId)).join('+')} in ${r.recoveryMs.toFixed(0)} ms`) }
          })) {
            if (e.event === 'done') { tokens = e.tokens; process.stdout.write('\n'); say(`${e.tokens.length} tokens, ${e.tokensPerSecond.toFixed(0)} tok/s, ${e.reroutes} re-route(s)`); break }
            if (e.index === 0) say(`route: ${e.route.map((h) => `${names.get(h.peer)}[${h.start},${h.end})`).join(' → ')}`)
            process.stdout.write(e.text)
            if (e.index === killAt) {
              const victim = peers.find((p) => p.peerId === e.route[e.route.length - 1].peer)!
              process.stdout.write('\n')
              say(`kill -9 peer ${names.get(victim.peerId)} mid-generation`)
              victim.kill('SIGKILL')
            }
          }
        } finally {
          await swarm.close()
        }
        say('checking against local single-process generation of the same model')
        const local = await LocalModel.load(o.dir)
        let expected: number[] = []
        for await (const e of local.generate({ text: o.prompt }, { maxNewTokens: o.tokens, ignoreEos: true })) if (e.event === 'done') expected = e.tokens
        await local.close()
        const same = expected.length === tokens.length && expected.every((t, i) => t === tokens[i])
        say(same ? 'identical tokens: the failure was invisible' : 'MISMATCH against local generation')
        if (!same) process.exitCode = 1
      } finally {
        say('stopping the swarm')
        await stopPeers(peers)
        process.off('exit', onExit)
      }
    })
}
