// Section "llamacpp": strata next to llama.cpp on the same weights, same threads, same prompt, in
// the same run. The benchmark model is written as GGUF by our writer (gguf.ts) in F32, Q8_0 and
// Q4_0, and run with node-llama-cpp's prebuilt CPU binary — a bench-only dependency installed on
// first use into .cache/llama-cpp from the npm registry (never by `npm install`). Per format
// pair: greedy-token agreement (the same model?), prefill and decode tok/s, their ratios; a
// 3-peer loopback swarm against llama.cpp RPC's 3-server figures from DESIGN.md's anchor runs;
// and the memory-bandwidth bound (weight bytes read per token ÷ measured copy bandwidth).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { WeightFormat } from '../../src/shards/span-graph.ts'
import { Swarm } from '../../src/client/swarm.ts'
import { evenSpans, stopPeers } from '../../src/cli/local-swarm.ts'
import { writeGguf, type GgufFormat } from './gguf.ts'
import type { LlamaJob, LlamaRunResult } from './llamacpp-run.ts'
import type { LocalJob, LocalRunResult } from './local-run.ts'
import { CONTENDED_CORES } from './local.ts'
import { ensureBenchModel, shapeCounts, QUICK_SHAPE, TINYLLAMA_SHAPE, type BenchShape } from './model-cache.ts'
import { measure } from './swarm.ts'
import { renderTable } from './report.ts'
import { log, median, round, randomTokens, runChild, startBenchSwarm } from './util.ts'

/** pinned: its prebuilt linux-x64 CPU binary runs here with build: 'never' */
const NODE_LLAMA_CPP = '3.21.1'
/** llama.cpp RPC over loopback, 3 servers, decode tok/s (DESIGN.md's anchor runs, TinyLlama shape) */
const RPC_ANCHOR: Record<GgufFormat, number> = { F32: 5.5, Q8_0: 17, Q4_0: 17 }
const PAIRS: Array<{ strata: WeightFormat, gguf: GgufFormat }> = [
  { strata: 'f32', gguf: 'F32' },
  { strata: 'int8', gguf: 'Q8_0' },
  { strata: 'int4', gguf: 'Q4_0' }
]
/** bytes per weight as each side stores a matrix: strata's MatMulNBits blocks of 32 carry an f32 scale, GGUF's an f16 one */
const BYTES_PER_WEIGHT: Record<WeightFormat | GgufFormat, number> = { f32: 4, f16: 2, int8: 1 + 4 / 32, int4: 0.5 + 4 / 32, F32: 4, Q8_0: 34 / 32, Q4_0: 18 / 32 }

export interface LlamaBenchOptions {
  quick: boolean
  cacheDir: string
  threads: number
  promptTokens: number
  decodeTokens: number
  repeats: number
  idleWaitSeconds: number
  /** also run the 3-peer swarm per format */
  swarm: boolean
}

interface Speeds { prefillTokensPerSecond: number, decodeTokensPerSecond: number }

export interface LlamaPairResult {
  strata: WeightFormat
  gguf: GgufFormat
  ggufBytes: number
  llamaCpp: Speeds & { loadSeconds: number }
  strataLocal: Speeds & { contended: boolean }
  /** strata / llama.cpp, same run */
  ratios: { decode: number, prefill: number }
  /** greedy tokens: positions equal before the first difference, of `positions` */
  agreement: { prefixMatch: number, positions: number, llamaCppVsF32Prefix: number | null, strataVsF32Prefix: number | null }
  swarm: { peers: number, decodeTokensPerSecond: number, vsRpcAnchor: number, identicalToLocal: boolean } | null
  /** tokens/s if every weight byte read per token came at the measured copy bandwidth */
  bandwidthBound: { strataTokensPerSecond: number, llamaCppTokensPerSecond: number }
}

export interface LlamaBenchResult {
  section: 'llamacpp'
  shape: BenchShape
  nodeLlamaCpp: string
  settings: { threads: number, promptTokens: number, decodeTokens: number, repeats: number, headFormat: 'as the blocks' }
  copyBandwidthGBps: number
  pairs: LlamaPairResult[]
}

/** node-llama-cpp in .cache/llama-cpp, installed there from the registry on first use. */
function ensureNodeLlamaCpp (root: string): string {
  const dir = path.join(root, '.cache', 'llama-cpp')
  const pkg = path.join(dir, 'node_modules', 'node-llama-cpp', 'package.json')
  if (existsSync(pkg)) return dir
  if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) throw new Error(`the llama.cpp bench installs node-llama-cpp's prebuilt Linux binary; not available for ${process.platform}-${process.arch}`)
  log(`installing node-llama-cpp ${NODE_LLAMA_CPP} (CPU binary only) into ${dir} …`)
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'strata-bench-llama-cpp', private: true }))
  // only the CPU build: the optional CUDA/Vulkan binaries would add ~600 MB
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--omit=optional', `node-llama-cpp@${NODE_LLAMA_CPP}`, `@node-llama-cpp/linux-${process.arch}@${NODE_LLAMA_CPP}`],
    { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
  return dir
}

/** The benchmark model as GGUF, written next to it once per format. */
export function ensureGguf (modelDir: string, format: GgufFormat): string {
  const file = `${modelDir}.${format}.gguf`
  if (existsSync(file) && statSync(file).mtimeMs >= statSync(path.join(modelDir, 'model.safetensors')).mtimeMs) return file
  log(`writing ${path.basename(file)} …`)
  writeGguf(modelDir, `${file}.partial`, format)
  renameSync(`${file}.partial`, file)
  return file
}

/** Best of a few 256 MiB buffer copies, GB/s (bytes copied per second). */
function copyBandwidth (): number {
  const bytes = 256 * 1024 ** 2
  const a = Buffer.alloc(bytes, 1)
  const b = Buffer.allocUnsafe(bytes)
  let best = Infinity
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now()
    a.copy(b)
    best = Math.min(best, (performance.now() - t0) / 1000)
  }
  return bytes / best / 1e9
}

function prefix (a: number[], b: number[]): number {
  let n = 0
  while (n < a.length && n < b.length && a[n] === b[n]) n++
  return n
}

async function swarmDecode (modelDir: string, format: WeightFormat, o: LlamaBenchOptions, prompt: number[], layers: number): Promise<{ tokensPerSecond: number, tokens: number[] }> {
  const { bootstrap, peers } = await startBenchSwarm(modelDir, evenSpans(layers, 3), o.threads, format === 'f32' ? [] : ['--quantize', format])
  try {
    const swarm = await Swarm.connect({ bootstrap: [bootstrap], modelDir, threads: o.threads, headFormat: format, stepTimeoutMs: 60_000 })
    try {
      return await measure((p) => swarm.generate({ ids: p }, { maxNewTokens: o.decodeTokens + 1, ignoreEos: true }), prompt, o.repeats)
    } finally {
      await swarm.close()
    }
  } finally {
    await stopPeers(peers)
  }
}

export async function benchLlamaCpp (o: LlamaBenchOptions, root: string): Promise<LlamaBenchResult> {
  const shape = o.quick ? QUICK_SHAPE : TINYLLAMA_SHAPE
  const { dir } = await ensureBenchModel(o.cacheDir, shape)
  const installDir = ensureNodeLlamaCpp(root)
  const prompt = randomTokens(o.promptTokens, 3, shape.vocab, 2024)
  const bandwidth = copyBandwidth()
  log(`copy bandwidth ${bandwidth.toFixed(1)} GB/s`)
  const { blockParams } = shapeCounts(shape)
  const headMatrix = shape.vocab * shape.hidden
  const bytesPerToken = (f: WeightFormat | GgufFormat): number => (blockParams + headMatrix) * BYTES_PER_WEIGHT[f]
  const pairs: LlamaPairResult[] = []
  let f32Tokens: { llama: number[], strata: number[] } | null = null
  for (const pair of PAIRS) {
    const gguf = ensureGguf(dir, pair.gguf)
    log(`${pair.gguf}: llama.cpp, ${o.threads} threads …`)
    const llamaJob: LlamaJob = { installDir, gguf, threads: o.threads, prompt, decodeTokens: o.decodeTokens, repeats: o.repeats }
    const llama = await runChild<LlamaRunResult>(new URL('./llamacpp-run.ts', import.meta.url), { ...llamaJob }, `llama.cpp ${pair.gguf}`)
    log(`${pair.strata}: strata local (head ${pair.strata}), ${o.threads} threads …`)
    const job: LocalJob = {
      mode: 'run', modelDir: dir, format: pair.strata, headFormat: pair.strata, threads: o.threads, prompt, decodeTokens: o.decodeTokens,
      repeats: o.repeats, idleWaitSeconds: o.idleWaitSeconds, idleCores: CONTENDED_CORES, reference: null
    }
    const local = await runChild<LocalRunResult>(new URL('./local-run.ts', import.meta.url), { ...job }, `strata ${pair.strata}`)
    const clean = local.runs.filter((t) => t.cpuOtherCores < CONTENDED_CORES)
    const runs = clean.length > 0 ? clean : local.runs
    const strataLocal = {
      prefillTokensPerSecond: round(o.promptTokens / median(runs.map((t) => t.prefillSeconds)), 2),
      decodeTokensPerSecond: round(o.decodeTokens / median(runs.map((t) => t.decodeSeconds)), 2),
      contended: clean.length === 0
    }
    const llamaCpp = {
      prefillTokensPerSecond: round(o.promptTokens / median(llama.prefillSeconds), 2),
      decodeTokensPerSecond: round(o.decodeTokens / median(llama.decodeSeconds), 2),
      loadSeconds: round(llama.loadSeconds, 2)
    }
    if (pair.strata === 'f32') f32Tokens = { llama: llama.tokens, strata: local.tokens }
    let swarm: LlamaPairResult['swarm'] = null
    if (o.swarm) {
      log(`${pair.strata}: 3-peer loopback swarm …`)
      const s = await swarmDecode(dir, pair.strata, o, prompt, shape.layers)
      swarm = { peers: 3, decodeTokensPerSecond: round(s.tokensPerSecond, 2), vsRpcAnchor: round(s.tokensPerSecond / RPC_ANCHOR[pair.gguf], 2), identicalToLocal: s.tokens.join() === local.tokens.join() }
    }
    pairs.push({
      strata: pair.strata,
      gguf: pair.gguf,
      ggufBytes: statSync(gguf).size,
      llamaCpp,
      strataLocal,
      ratios: { decode: round(strataLocal.decodeTokensPerSecond / llamaCpp.decodeTokensPerSecond), prefill: round(strataLocal.prefillTokensPerSecond / llamaCpp.prefillTokensPerSecond) },
      agreement: {
        prefixMatch: prefix(local.tokens, llama.tokens),
        positions: local.tokens.length,
        llamaCppVsF32Prefix: f32Tokens === null ? null : prefix(llama.tokens, f32Tokens.llama),
        strataVsF32Prefix: f32Tokens === null ? null : prefix(local.tokens, f32Tokens.strata)
      },
      swarm,
      bandwidthBound: { strataTokensPerSecond: round(bandwidth * 1e9 / bytesPerToken(pair.strata), 1), llamaCppTokensPerSecond: round(bandwidth * 1e9 / bytesPerToken(pair.gguf), 1) }
    })
    log(`${pair.gguf}: llama.cpp decode ${llamaCpp.decodeTokensPerSecond} tok/s, strata ${strataLocal.decodeTokensPerSecond} tok/s; tokens agree for ${pairs[pairs.length - 1].agreement.prefixMatch}/${local.tokens.length}`)
  }
  return {
    section: 'llamacpp',
    shape,
    nodeLlamaCpp: NODE_LLAMA_CPP,
    settings: { threads: o.threads, promptTokens: o.promptTokens, decodeTokens: o.decodeTokens, repeats: o.repeats, headFormat: 'as the blocks' },
    copyBandwidthGBps: round(bandwidth, 2),
    pairs
  }
}

export function renderLlamaCpp (r: LlamaBenchResult): string {
  const rows = r.pairs.map((p) => [
    `${p.strata} / ${p.gguf}`,
    `${p.agreement.prefixMatch}/${p.agreement.positions}`,
    String(p.llamaCpp.prefillTokensPerSecond), String(p.strataLocal.prefillTokensPerSecond), `${p.ratios.prefill}×`,
    String(p.llamaCpp.decodeTokensPerSecond), String(p.strataLocal.decodeTokensPerSecond), `${p.ratios.decode}×`,
    p.swarm === null ? '–' : `${p.swarm.decodeTokensPerSecond} (${p.swarm.vsRpcAnchor}× RPC)`,
    `${p.bandwidthBound.strataTokensPerSecond} / ${p.bandwidthBound.llamaCppTokensPerSecond}`
  ])
  return [
    renderTable(['formats', 'same greedy tokens', 'llama.cpp prefill', 'strata prefill', 'ratio', 'llama.cpp decode', 'strata decode', 'ratio', 'strata 3-peer swarm decode', 'bandwidth bound strata / llama.cpp'], rows),
    '',
    `tok/s; ${r.settings.threads} threads each, ${r.settings.promptTokens}-token prompt, ${r.settings.decodeTokens} decode tokens, median of ${r.settings.repeats}; node-llama-cpp ${r.nodeLlamaCpp} (prebuilt CPU); ` +
    `strata's head in the blocks' format; copy bandwidth ${r.copyBandwidthGBps} GB/s. ` +
    `Quantized pairs use different quantizers (and onnxruntime's int8 activations), so their tokens part sooner: ` +
    r.pairs.filter((p) => p.agreement.llamaCppVsF32Prefix !== null && p.strata !== 'f32').map((p) => `${p.gguf} keeps ${p.agreement.llamaCppVsF32Prefix}, ${p.strata} ${p.agreement.strataVsF32Prefix} tokens of their f32 runs`).join('; ')
  ].join('\n')
}
