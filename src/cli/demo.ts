import type { Command } from 'commander'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { makeModel } from '../shards/make-model.ts'
import { LocalModel } from '../client/local-model.ts'
import { printEvents } from './generate.ts'

export const DEMO_SHAPE = { layers: 8, hidden: 256, heads: 8, kvHeads: 2, intermediate: 688, vocab: 1024, seed: 2026 }

export function registerDemo (program: Command): void {
  program.command('demo')
    .description('end-to-end demo on a generated model')
    .option('--dir <dir>', 'where the demo model lives', path.join('.cache', 'demo-model'))
    .option('--prompt <text>', 'prompt', 'Once upon a time')
    .action(async (o) => {
      if (!existsSync(path.join(o.dir, 'config.json'))) {
        process.stderr.write(`generating a random-weight demo model in ${o.dir} …\n`)
        makeModel({ ...DEMO_SHAPE, out: o.dir })
      }
      const model = await LocalModel.load(o.dir, { spans: [[0, 3], [3, 6], [6, 8]] })
      try {
        process.stderr.write(`prompt: ${JSON.stringify(o.prompt)} (blocks split into spans [0,3) [3,6) [6,8), local)\n`)
        await printEvents(model.generate({ text: o.prompt }, { maxNewTokens: 40, ignoreEos: true }), false, true)
      } finally {
        await model.close()
      }
    })
}
