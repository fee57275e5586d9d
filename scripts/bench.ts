// `npm run bench -- [--quick] [--only local] [--out DIR] [--formats f32,int8,int4] [--threads 2] …`
//
// Runs the benchmark sections one after another; each prints a table on stdout and writes
// <out>/<section>.json with the machine description, its settings and its numbers. Comparisons
// are ratios measured in the same run. Progress goes to stderr.
import '../src/polyfill.ts'
import { parseArgs } from 'node:util'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { WeightFormat } from '../src/shards/span-graph.ts'
import { benchLocal } from './bench/local.ts'
import { machineInfo, machineLine, renderLocal, renderTable, writeJson, type MachineInfo } from './bench/report.ts'
import { existsSync } from 'node:fs'
import { runChaos } from '../src/cli/chaos.ts'
import { benchWanRecovery } from './bench/wan-recovery.ts'
import { benchSwarm, renderSwarm } from './bench/swarm.ts'
import { benchEval, renderEval } from './bench/eval.ts'
import { benchLoad, renderLoad } from './bench/load.ts'
import { benchLlamaCpp, renderLlamaCpp } from './bench/llamacpp.ts'
import { benchWan, renderWan } from './bench/wan.ts'
import { benchHop, renderHop } from './bench/hop.ts'
import { benchPush, renderPush } from './bench/push.ts'
import { benchSpeculative, renderSpeculative } from './bench/speculative.ts'
import { benchDht, renderDht } from './bench/dht.ts'
import { benchBatch, renderBatch } from './bench/batch.ts'
import { DEMO_SHAPE } from '../src/cli/demo.ts'
import { makeModel } from '../src/shards/make-model.ts'
import { log } from './bench/util.ts'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const FORMATS: readonly WeightFormat[] = ['f32', 'f16', 'int8', 'int4']

const USAGE = `usage: npm run bench -- [options]

  --only <sections>     comma-separated sections to run (default: all): local, load, swarm, eval, recovery,
                        llamacpp (installs node-llama-cpp's CPU binary into .cache/llama-cpp on first use), wan, hop,
                        push, speculative, dht, batch
  --quick               small model shape (hidden 512, 4 layers, vocab 4096): a smoke test in seconds
                        (dht: 16 peers instead of 50)
  --out <dir>           where <section>.json goes (<section>-quick.json with --quick;
                        default: bench-results)
  --formats <list>      weight formats, comma-separated (default: f32,int8,int4; also f16)
  --threads <n>         compute threads per engine (default: 2)
  --cache <dir>         benchmark model directory (default: .cache/bench-tinyllama-f32, or
                        .cache/bench-quick-f32 with --quick); generated once, then reused
  --prompt-tokens <n>   prompt length, prefilled in one step (default: 128)
  --decode-tokens <n>   greedy decode steps after the prompt (default: 64)
  --repeats <n>         measured generations per format after one warm-up (default: 3)
  --load-breakdown      also time span loading stage by stage (build / serialise / session / fed weights)
  --speculate <k>       speculative section: draft tokens per step (default: 4)
  --dht-peers <n>       peers in the dht section's swarm (default: 50; 16 with --quick)
  --dht-procs <n>       child processes hosting the dht section's peers (default: one per ~9 peers)
  --idle-wait <s>       before each measured generation, wait up to s seconds for other
                        processes to stop using the CPU (default: 30; 0 = don't wait)
  -h, --help            this text
`

interface Section {
  run: (ctx: { machine: MachineInfo, args: Args }) => Promise<{ json: unknown, text: string }>
}

type Args = ReturnType<typeof parse>

function parse (argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string', default: 'bench-results' },
      formats: { type: 'string', default: 'f32,int8,int4' },
      threads: { type: 'string', default: '2' },
      cache: { type: 'string' },
      'prompt-tokens': { type: 'string', default: '128' },
      'decode-tokens': { type: 'string', default: '64' },
      repeats: { type: 'string', default: '3' },
      'load-breakdown': { type: 'boolean', default: false },
      'idle-wait': { type: 'string', default: '30' },
      speculate: { type: 'string', default: '4' },
      'dht-peers': { type: 'string' },
      'dht-procs': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  const int = (name: string, v: string, min: number): number => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`)
    return n
  }
  const formats = values.formats.split(',').map((f) => f.trim()).filter((f) => f !== '')
  for (const f of formats) if (!FORMATS.includes(f as WeightFormat)) throw new Error(`--formats: unknown format ${JSON.stringify(f)} (known: ${FORMATS.join(', ')})`)
  if (formats.length === 0) throw new Error('--formats: give at least one format')
  const only = values.only === undefined ? Object.keys(SECTIONS) : values.only.split(',').map((s) => s.trim())
  for (const s of only) if (!(s in SECTIONS)) throw new Error(`--only: unknown section ${JSON.stringify(s)} (available: ${Object.keys(SECTIONS).join(', ')})`)
  return {
    help: values.help,
    only,
    quick: values.quick,
    out: path.resolve(values.out),
    formats: [...new Set(formats)] as WeightFormat[],
    threads: int('threads', values.threads, 1),
    cache: path.resolve(values.cache ?? path.join(ROOT, '.cache', values.quick ? 'bench-quick-f32' : 'bench-tinyllama-f32')),
    promptTokens: int('prompt-tokens', values['prompt-tokens'], 1),
    decodeTokens: int('decode-tokens', values['decode-tokens'], 1),
    repeats: int('repeats', values.repeats, 1),
    loadBreakdown: values['load-breakdown'],
    idleWaitSeconds: int('idle-wait', values['idle-wait'], 0),
    speculate: int('speculate', values.speculate, 1),
    dhtPeers: values['dht-peers'] === undefined ? undefined : int('dht-peers', values['dht-peers'], 4),
    dhtProcs: values['dht-procs'] === undefined ? undefined : int('dht-procs', values['dht-procs'], 1)
  }
}

const SECTIONS: Record<string, Section> = {
  local: {
    async run ({ machine, args }) {
      const result = await benchLocal({
        quick: args.quick,
        formats: args.formats,
        threads: args.threads,
        cacheDir: args.cache,
        promptTokens: args.promptTokens,
        decodeTokens: args.decodeTokens,
        repeats: args.repeats,
        loadBreakdown: args.loadBreakdown,
        idleWaitSeconds: args.idleWaitSeconds
      })
      return { json: { date: new Date().toISOString(), machine, ...result }, text: renderLocal(result) }
    }
  },
  load: {
    // span load time vs reading its bytes, and memory, per checkpoint dtype and quantized-cache state
    async run ({ machine, args }) {
      const r = await benchLoad({ quick: args.quick, threads: args.threads, cacheRoot: path.dirname(args.cache) })
      return { json: { date: new Date().toISOString(), machine, ...r }, text: renderLoad(r) }
    }
  },
  swarm: {
    // the same model local vs through 3 peer processes on loopback, f32 and f16 wire
    async run ({ machine, args }) {
      const r = await benchSwarm({ quick: args.quick, cacheDir: args.cache, peers: 3, threads: args.threads, promptTokens: args.promptTokens, decodeTokens: args.decodeTokens, repeats: args.repeats })
      return { json: { date: new Date().toISOString(), machine, ...r }, text: renderSwarm(r) }
    }
  },
  llamacpp: {
    // the same weights as GGUF in llama.cpp (node-llama-cpp): local prefill/decode per format pair, a 3-peer swarm, bandwidth bound
    async run ({ machine, args }) {
      const r = await benchLlamaCpp({ quick: args.quick, cacheDir: args.cache, threads: args.threads, promptTokens: args.promptTokens, decodeTokens: args.decodeTokens, repeats: args.repeats, idleWaitSeconds: args.idleWaitSeconds, swarm: true }, ROOT)
      return { json: { date: new Date().toISOString(), machine, ...r }, text: renderLlamaCpp(r) }
    }
  },
  hop: {
    // ms per hop per token apart from compute: one-block models of hidden 512/2048/4096, local vs one peer, f32 and f16 wire
    async run ({ machine, args }) {
      const r = await benchHop({ cacheRoot: path.dirname(args.cache), hiddens: args.quick ? [512, 2048] : [512, 2048, 4096], threads: args.threads, decodeTokens: args.quick ? 32 : 128, repeats: args.quick ? 1 : args.repeats })
      return { json: { date: new Date().toISOString(), machine, ...r }, text: renderHop(r) }
    }
  },
  push: {
    // server-to-server push vs client relaying: 2 and 3 one-block peers, hidden 512/2048, ms per hop per token and tok/s; 3 hops behind 20/50 ms links
    async run ({ machine, args }) {
      const r = await benchPush({ cacheRoot: path.dirname(args.cache), hiddens: args.quick ? [2048] : [512, 2048], peerCounts: [2, 3], threads: args.threads, decodeTokens: args.quick ? 32 : 128, repeats: args.quick ? 2 : 5,
        wan: { cacheDir: path.join(path.dirname(args.cache), 'bench-quick-f32'), rtts: args.quick ? [20] : [20, 50], mbps: 100, decodeTokens: args.quick ? 8 : 16 } })
      return { json: { date: new Date().toISOString(), machine, ...r }, text: renderPush(r) }
    }
  },
  wan: {
    // 3 hops behind emulated wide-area links (delay proxies): TTFT and tok/s against RTT; latency-aware vs naive planning
    async run ({ machine, args }) {
      const r = await benchWan({ cacheDir: path.join(path.dirname(args.cache), 'bench-quick-f32'), threads: args.threads, rtts: [0, 20, 50, 100], mbps: 100, promptTokens: 32, decodeTokens: args.quick ? 16 : 32, repeats: args.quick ? 1 : 3 })
      return { json: { date: new Date().toISOString(), machine, ...r }, text: renderWan(r) }
    }
  },
  eval: {
    // perplexity of one text locally and through f32 / int8 / int4 peers and an f16 wire; JSON mask cost; n choices
    async run ({ machine, args }) {
      const r = await benchEval({ quick: args.quick, cacheDir: args.cache, peers: 2, threads: args.threads })
      return { json: { date: new Date().toISOString(), machine, ...r }, text: renderEval(r) }
    }
  },
  speculative: {
    // speculative decoding (prompt lookup; an int8 copy of the model as draft model) vs plain, locally and through 2 peer processes, on a repetitive and a random prompt
    async run ({ machine, args }) {
      const r = await benchSpeculative({ quick: args.quick, cacheDir: args.cache, peers: 2, threads: args.threads, promptTokens: args.promptTokens, decodeTokens: args.decodeTokens, repeats: args.repeats, draftTokens: args.speculate, draftFormat: 'int8' })
      return { json: { date: new Date().toISOString(), machine, ...r }, text: renderSpeculative(r) }
    }
  },
  recovery: {
    // time from a SIGKILL of a serving peer to the next token, over a redundant local swarm; re-routes over a 50 ms link
    async run ({ machine, args }) {
      const modelDir = path.join(ROOT, '.cache', 'demo-model')
      if (!existsSync(path.join(modelDir, 'config.json'))) makeModel({ ...DEMO_SHAPE, out: modelDir })
      const r = await runChaos({ modelDir, rounds: 20, tokens: 40, seed: 1, log })
      // and over a 50 ms link, where replaying the history one round trip per token would show
      const wan = await benchWanRecovery(path.join(path.dirname(args.cache), 'bench-quick-f32'), { rttMs: 50, mbps: 100, killAt: args.quick ? [20] : [20, 40, 80], threads: 1 })
      const text = renderTable(['kills', 'identical outputs', 're-routes', 'recovery p50 (ms)', 'recovery p95 (ms)'],
        [[String(r.rounds), String(r.rounds - r.mismatches), String(r.reroutes), r.p50.toFixed(0), r.p95.toFixed(0)]]) + '\n\n' +
        renderTable(['link', 'kill after tokens', 're-route took (ms)', 'same tokens'], wan.kills.map((k) => [`${wan.rttMs} ms RTT, ${wan.mbps} Mbit/s`, String(k.afterTokens), String(k.recoveryMs), k.identical ? 'yes' : 'NO']))
      return { json: { machine, section: 'recovery', model: DEMO_SHAPE, ...r, wan }, text }
    }
  },
  batch: {
    // aggregate decode tok/s of 1, 4, 8, 16 concurrent clients on one peer (decode steps batched across sessions)
    async run ({ machine, args }) {
      const r = await benchBatch({ cacheRoot: path.dirname(args.cache), quick: args.quick, clients: [1, 4, 8, 16], threads: args.threads, promptTokens: 16, decodeTokens: args.quick ? 16 : args.decodeTokens, repeats: args.quick ? 1 : args.repeats })
      return { json: { date: new Date().toISOString(), machine, ...r }, text: renderBatch(r) }
    }
  },
  dht: {
    // real libp2p nodes in child processes: lookup latency and hops, join/leave visibility, a third churning
    async run ({ machine, args }) {
      const sized = {
        ...(args.dhtPeers === undefined ? {} : { peers: args.dhtPeers }),
        ...(args.dhtProcs === undefined ? {} : { processes: args.dhtProcs })
      }
      const r = await benchDht(args.quick ? { peers: 16, clients: 2, lookups: 20, samples: 3, ...sized } : sized)
      return { json: { date: new Date().toISOString(), machine, ...r }, text: renderDht(r) }
    }
  }
}

async function main (): Promise<void> {
  let args: Args
  try {
    args = parse(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`)
    process.exitCode = 2
    return
  }
  if (args.help) { process.stdout.write(USAGE); return }
  const machine = machineInfo()
  process.stdout.write(`# strata bench — ${new Date().toISOString()}\n${machineLine(machine)}\n\n`)
  for (const name of args.only) {
    log(`section ${name}`)
    const { json, text } = await SECTIONS[name].run({ machine, args })
    // quick-mode numbers never overwrite the real ones
    const file = writeJson(args.out, args.quick ? `${name}-quick` : name, json)
    const shown = path.relative(process.cwd(), file)
    process.stdout.write(`${text}\n\nwritten: ${shown.startsWith('..') ? file : shown}\n\n`)
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
