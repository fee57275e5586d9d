import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { Option } from 'commander'
import { LocalModel } from '../client/local-model.ts'
import { Swarm } from '../client/swarm.ts'
import type { Prompt } from '../client/session.ts'
import type { ScoreResult } from '../client/scoring.ts'
import { int, idList, collect } from './flags.ts'

export function registerPerplexity (program: Command): void {
  program.command('perplexity')
    .description('score a text: per-token negative log-likelihood and perplexity, locally without --bootstrap, through the swarm with it')
    .requiredOption('--model <dir>', 'model directory (config, tokenizer; block weights only when local)')
    .option('--file <path>', 'text file to score (tokenized with the model\'s tokenizer, BOS added)')
    .option('--prompt-ids <ids>', 'token ids to score, comma-separated', idList)
    .option('--window <n>', 'positions per window (default: the model\'s max positions); longer texts are scored in consecutive windows', int(2))
    .option('--bootstrap <multiaddr>', 'bootstrap peer of the swarm (repeatable)', collect, [])
    .addOption(new Option('--wire <dtype>', 'swarm: hidden states on the wire').choices(['f32', 'f16']).default('f32'))
    .addOption(new Option('--quantize <format>', 'local weights: quantize on load').choices(['int8', 'int4']))
    .option('--threads <n>', 'compute threads per engine', int(1))
    .option('--json', 'print one JSON object')
    .action(async (o) => {
      if ((o.file === undefined) === (o.promptIds === undefined)) throw new Error('give exactly one of --file or --prompt-ids')
      if (o.bootstrap.length === 0 && o.wire !== 'f32') throw new Error('--wire applies to the swarm: give --bootstrap too')
      if (o.bootstrap.length > 0 && o.quantize !== undefined) throw new Error('--quantize applies to local weights; swarm peers choose their own (strata peer --quantize)')
      const prompt: Prompt = o.promptIds !== undefined ? { ids: o.promptIds } : { text: readText(o.file) }
      const controller = new AbortController()
      process.once('SIGINT', () => { controller.abort(new Error('interrupted')) })
      const opts = { window: o.window, signal: controller.signal }
      let result: ScoreResult
      if (o.bootstrap.length > 0) {
        const swarm = await Swarm.connect({ bootstrap: o.bootstrap, modelDir: o.model, threads: o.threads, wireDtype: o.wire, signal: controller.signal })
        try { result = await swarm.score(prompt, opts) } finally { await swarm.close() }
      } else {
        const model = await LocalModel.load(o.model, { weightFormat: o.quantize, threads: o.threads })
        try { result = await model.score(prompt, opts) } finally { await model.close() }
      }
      if (o.json === true) {
        const { logprobs, ...rest } = result
        process.stdout.write(JSON.stringify({ event: 'done', ...rest, tokenNll: logprobs.map((l) => l === null ? null : -l) }) + '\n')
        return
      }
      process.stdout.write(`perplexity ${result.perplexity.toFixed(4)}  (mean NLL ${result.meanNll.toFixed(4)} nats over ${result.scored} tokens, ` +
        `${result.windows} window${result.windows === 1 ? '' : 's'}, ${result.tokensPerSecond.toFixed(1)} tok/s${result.reroutes > 0 ? `, ${result.reroutes} re-routes` : ''})\n`)
    })
}

function readText (file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new Error(`cannot read --file ${file}: ${(err as Error).message}`)
  }
}
