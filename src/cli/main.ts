// `strata` command line: parses flags and calls the SDK / daemon. No logic of its own.
import '../polyfill.ts'
import { Command } from 'commander'
import { registerMakeModel } from './make-model.ts'
import { registerGenerate } from './generate.ts'
import { registerPerplexity } from './perplexity.ts'
import { registerDemo } from './demo.ts'
import { registerPeer } from './peer.ts'
import { registerHealth } from './health.ts'
import { registerServe } from './serve.ts'
import { registerChaos } from './chaos.ts'
import { registerRelay } from './relay.ts'

const program = new Command('strata')
  .description('Decentralized LLM inference swarm: run a peer, generate through the swarm, watch its health')
  .showHelpAfterError()
registerMakeModel(program)
registerGenerate(program)
registerPerplexity(program)
registerPeer(program)
registerHealth(program)
registerServe(program)
registerChaos(program)
registerRelay(program)
registerDemo(program)

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = err as Error
  process.stderr.write(`strata: error: ${e.message}\n`)
  if (process.env.STRATA_DEBUG === '1') process.stderr.write(`${e.stack ?? ''}\n`)
  process.exit(1)
})

