// Section "speculative": speculative decoding against plain decoding, locally and through a
// loopback swarm of peer processes, measured in the same run. Two drafters: prompt lookup, and a
// draft model (the same checkpoint quantized, `draftFormat`, running in the client). Two workloads:
//   repetitive — a "code block" given twice (as when asking for it to be repeated or edited); the
//                tokens that follow are whatever the model's greedy decoding makes of it
//   random     — the random prompt the other sections use: drafts are rarely right, which shows
//                what speculation costs when it does not pay
// Acceptance is what the model really agreed with (nothing is forced); every speculative run's
// tokens are checked against the plain run's.
import { LocalModel } from '../../src/client/local-model.ts'
import { LocalPipeline } from '../../src/client/local.ts'
import { WorkerHeadEngine } from '../../src/shards/worker/engine-client.ts'
import { Swarm } from '../../src/client/swarm.ts'
import type { WeightFormat } from '../../src/shards/span-graph.ts'
import type { GenerationEvent, SpeculationSummary } from '../../src/client/session.ts'
import type { GenerateOptions } from '../../src/client/generation.ts'
import type { SwarmBenchOptions } from './swarm.ts'
import { evenSpans, stopPeers } from '../../src/cli/local-swarm.ts'
import { ensureBenchModel, QUICK_SHAPE, TINYLLAMA_SHAPE, type BenchShape } from './model-cache.ts'
import { renderTable } from './report.ts'
import { log, median, round, randomTokens, startBenchSwarm } from './util.ts'

export interface SpeculativeBenchOptions extends SwarmBenchOptions {
  /** draft tokens per step */
  draftTokens: number
  /** the draft model's weight format (the bench model itself, quantized) */
  draftFormat: WeightFormat
}

interface Run {
  decodeTokensPerSecond: number
  /** with speculation: draft tokens proposed in one generation, and the share the model accepted */
  proposed?: number
  acceptanceRate?: number
  /** generated tokens per forward step after the prefill */
  tokensPerStep?: number
  /** with speculation: the same tokens as the plain run */
  identicalToPlain?: boolean
}

interface Workload {
  name: 'repetitive' | 'random'
  promptTokens: number
  /** speculative: prompt-lookup drafts; draftModel: drafts of the draft model */
  local: Runs
  swarm: Runs
  /** speculative / plain decode speed, each over the same pipeline */
  localSpeedup: number
  swarmSpeedup: number
  /** speculative swarm / plain local */
  swarmSpeculativeVsLocalPlain: number
  /** with the draft model: local speculative / local plain, swarm speculative / local plain */
  localDraftModelSpeedup: number
  swarmDraftModelVsLocalPlain: number
}

interface Runs { plain: Run, speculative: Run, draftModel: Run }

/** What verifying more positions in one step costs, locally (blocks + LM head for every row). */
export interface VerifyCost {
  /** positions in the step: 1 (plain decoding) to draftTokens + 1 */
  rows: number[]
  msPerStep: number[]
  /** msPerStep / msPerStep of one row */
  ratio: number[]
  /**
   * tokens/s speedup a drafter with per-token acceptance α would give at the full draft length:
   * (1 − α^(k+1)) / (1 − α) tokens per step (Leviathan et al.) over the measured step cost
   */
  projected: Array<{ acceptance: number, tokensPerStep: number, speedup: number }>
}

export interface SpeculativeBenchResult {
  section: 'speculative'
  shape: BenchShape
  peers: Array<{ start: number, end: number }>
  threads: number
  decodeTokens: number
  draftTokens: number
  draftFormat: WeightFormat
  workloads: Workload[]
  verifyCost: VerifyCost
}

type Gen = (prompt: number[], speculate: number) => AsyncIterable<GenerationEvent>
/** plain and prompt-lookup generation, and generation drafting with the draft model */
interface Gens { lookup: Gen, model: Gen }

/** Decode speed (tokens after the first, whose time includes the prefill), tokens, speculation. */
interface Timed { tokensPerSecond: number, tokens: number[], speculation?: SpeculationSummary }

async function timeDecode (gen: Gen, prompt: number[], speculate: number): Promise<Timed> {
  let t1 = 0
  for await (const e of gen(prompt, speculate)) {
    if (e.event === 'token' && e.index === 0) t1 = performance.now()
    if (e.event === 'done') return { tokensPerSecond: (e.tokens.length - 1) / ((performance.now() - t1) / 1000), tokens: e.tokens, speculation: e.speculation }
  }
  throw new Error('generation ended without a done event')
}

/** Plain, prompt-lookup and draft-model runs interleaved (so load drifts hit all alike); medians of `repeats`. */
async function measureRuns (gens: Gens, prompt: number[], o: SpeculativeBenchOptions): Promise<Runs> {
  await timeDecode(gens.lookup, prompt.slice(0, 8), o.draftTokens) // warm-up
  await timeDecode(gens.model, prompt.slice(0, 8), o.draftTokens)
  const plain: Timed[] = []
  const lookup: Timed[] = []
  const model: Timed[] = []
  for (let i = 0; i < o.repeats; i++) {
    plain.push(await timeDecode(gens.lookup, prompt, 0))
    lookup.push(await timeDecode(gens.lookup, prompt, o.draftTokens))
    model.push(await timeDecode(gens.model, prompt, o.draftTokens))
  }
  const speculative = (runs: Timed[]): Run => {
    const s = runs[0].speculation!
    return {
      decodeTokensPerSecond: round(median(runs.map((r) => r.tokensPerSecond)), 2),
      proposed: s.proposed,
      acceptanceRate: round(s.acceptanceRate, 3),
      // every step after the prefill gives one token of its own plus the drafts it accepted
      tokensPerStep: round((runs[0].tokens.length - 1) / (runs[0].tokens.length - 1 - s.accepted), 2),
      identicalToPlain: runs.every((r) => r.tokens.length === plain[0].tokens.length && r.tokens.every((t, i) => t === plain[0].tokens[i]))
    }
  }
  return {
    plain: { decodeTokensPerSecond: round(median(plain.map((r) => r.tokensPerSecond)), 2), tokensPerStep: 1 },
    speculative: speculative(lookup),
    draftModel: speculative(model)
  }
}

const round2 = (x: number): number => round(x, 2)

/** Times steps of 1 … k + 1 positions at the end of `prompt` (each cut back again), head included. */
async function measureVerifyCost (dir: string, layers: number, prompt: number[], o: SpeculativeBenchOptions): Promise<VerifyCost> {
  const head = await WorkerHeadEngine.load(dir, { threads: o.threads })
  const pipeline = await LocalPipeline.load(dir, layers, { threads: o.threads, maxLength: prompt.length + o.draftTokens + 1 })
  try {
    const P = prompt.length
    await pipeline.forward(await head.embed(prompt), 0)
    const rows = Array.from({ length: o.draftTokens + 1 }, (_, i) => i + 1)
    const inputs = await Promise.all(rows.map(async (n) => await head.embed(prompt.slice(0, n))))
    // row counts interleaved round by round, so that load drifting over the measurement hits all alike
    const times: number[][] = rows.map(() => [])
    const rounds = Math.max(5, 2 * o.repeats)
    for (let round = 0; round <= rounds; round++) {
      for (const [i, n] of rows.entries()) {
        const t0 = performance.now()
        await head.logits(await pipeline.forward(inputs[i], P), n > 1)
        if (round > 0) times[i].push(performance.now() - t0) // round 0 warms up
        await pipeline.truncate(P)
      }
    }
    const msPerStep = times.map((t) => round2(median(t)))
    const ratio = msPerStep.map((ms) => round(ms / msPerStep[0], 3))
    const k = o.draftTokens
    const projected = [0.3, 0.5, 0.7, 0.9].map((a) => {
      const tokensPerStep = (1 - a ** (k + 1)) / (1 - a)
      return { acceptance: a, tokensPerStep: round(tokensPerStep, 2), speedup: round(tokensPerStep / ratio[k], 2) }
    })
    return { rows, msPerStep, ratio, projected }
  } finally {
    await pipeline.close()
    await head.dispose()
  }
}

/** Something that generates: a LocalModel or a Swarm. */
interface Generator { generate: (prompt: { ids: number[] }, opts: GenerateOptions) => AsyncIterable<GenerationEvent> }

/** measureRuns for every prompt: `plain` decodes plainly and by prompt lookup, `drafting` holds the draft model. */
async function measurePrompts (where: string, plain: Generator, drafting: Generator, prompts: Record<string, number[]>, o: SpeculativeBenchOptions): Promise<Record<string, Runs>> {
  const genOpts = { maxNewTokens: o.decodeTokens, ignoreEos: true }
  const runs: Record<string, Runs> = {}
  for (const [name, prompt] of Object.entries(prompts)) {
    log(`speculative: ${where}, ${name} prompt`)
    runs[name] = await measureRuns({
      lookup: (p, speculate) => plain.generate({ ids: p }, { ...genOpts, speculate }),
      model: (p, speculate) => drafting.generate({ ids: p }, { ...genOpts, speculate })
    }, prompt, o)
  }
  return runs
}

/** A code-block-like run of tokens given twice, then its first tokens again: "repeat / edit this". */
function repetitivePrompt (vocab: number): number[] {
  const block = randomTokens(48, 3, vocab, 11)
  return [1, ...block, ...randomTokens(4, 3, vocab, 12), ...block, ...block.slice(0, 8)]
}

export async function benchSpeculative (o: SpeculativeBenchOptions): Promise<SpeculativeBenchResult> {
  const shape = o.quick ? QUICK_SHAPE : TINYLLAMA_SHAPE
  const { dir } = await ensureBenchModel(o.cacheDir, shape)
  const prompts = { repetitive: repetitivePrompt(shape.vocab), random: randomTokens(o.promptTokens, 3, shape.vocab, 7) }

  const draftModel = { dir, weightFormat: o.draftFormat }
  log(`speculative: local (${o.threads} threads), ${o.draftTokens} draft tokens, draft model ${o.draftFormat}`)
  const local = await LocalModel.load(dir, { threads: o.threads })
  const drafting = await LocalModel.load(dir, { threads: o.threads, draftModel })
  let localRuns: Record<string, Runs>
  try {
    localRuns = await measurePrompts('local', local, drafting, prompts, o)
  } finally {
    await local.close()
    await drafting.close()
  }

  log('speculative: cost of verifying 1 … k + 1 positions in one step')
  const verifyCost = await measureVerifyCost(dir, shape.layers, prompts.random, o)

  const spans = evenSpans(shape.layers, o.peers)
  log(`speculative: starting ${o.peers} peers ${spans.map(([a, b]) => `[${a},${b})`).join(' ')}`)
  const { bootstrap, peers } = await startBenchSwarm(dir, spans, o.threads)
  let swarmRuns: Record<string, Runs>
  try {
    const client = { bootstrap: [bootstrap], modelDir: dir, threads: o.threads, stepTimeoutMs: 60_000 }
    const swarm = await Swarm.connect(client)
    const drafting = await Swarm.connect({ ...client, draftModel })
    try {
      swarmRuns = await measurePrompts('swarm', swarm, drafting, prompts, o)
    } finally {
      await swarm.close()
      await drafting.close()
    }
  } finally {
    await stopPeers(peers)
  }

  const workloads = (['repetitive', 'random'] as const).map((name): Workload => {
    const l = localRuns[name]
    const s = swarmRuns[name]
    return {
      name,
      promptTokens: prompts[name].length,
      local: l,
      swarm: s,
      localSpeedup: round(l.speculative.decodeTokensPerSecond / l.plain.decodeTokensPerSecond, 3),
      swarmSpeedup: round(s.speculative.decodeTokensPerSecond / s.plain.decodeTokensPerSecond, 3),
      swarmSpeculativeVsLocalPlain: round(s.speculative.decodeTokensPerSecond / l.plain.decodeTokensPerSecond, 3),
      localDraftModelSpeedup: round(l.draftModel.decodeTokensPerSecond / l.plain.decodeTokensPerSecond, 3),
      swarmDraftModelVsLocalPlain: round(s.draftModel.decodeTokensPerSecond / l.plain.decodeTokensPerSecond, 3)
    }
  })
  return { section: 'speculative', shape, peers: spans.map(([start, end]) => ({ start, end })), threads: o.threads, decodeTokens: o.decodeTokens, draftTokens: o.draftTokens, draftFormat: o.draftFormat, workloads, verifyCost }
}

export function renderSpeculative (r: SpeculativeBenchResult): string {
  const rows = r.workloads.flatMap((w) => [
    [w.name, 'local, plain', String(w.local.plain.decodeTokensPerSecond), '', '', ''],
    [w.name, `local, speculate ${r.draftTokens}`, String(w.local.speculative.decodeTokensPerSecond), `${w.local.speculative.acceptanceRate} of ${w.local.speculative.proposed}`, String(w.local.speculative.tokensPerStep), `${w.localSpeedup}×`],
    [w.name, `local, speculate ${r.draftTokens}, ${r.draftFormat} draft model`, String(w.local.draftModel.decodeTokensPerSecond), `${w.local.draftModel.acceptanceRate} of ${w.local.draftModel.proposed}`, String(w.local.draftModel.tokensPerStep), `${w.localDraftModelSpeedup}×`],
    [w.name, `swarm ${r.peers.length} peers, plain`, String(w.swarm.plain.decodeTokensPerSecond), '', '', ''],
    [w.name, `swarm ${r.peers.length} peers, speculate ${r.draftTokens}`, String(w.swarm.speculative.decodeTokensPerSecond), `${w.swarm.speculative.acceptanceRate} of ${w.swarm.speculative.proposed}`, String(w.swarm.speculative.tokensPerStep), `${w.swarmSpeedup}× (${w.swarmSpeculativeVsLocalPlain}× local plain)`],
    [w.name, `swarm ${r.peers.length} peers, speculate ${r.draftTokens}, ${r.draftFormat} draft model`, String(w.swarm.draftModel.decodeTokensPerSecond), `${w.swarm.draftModel.acceptanceRate} of ${w.swarm.draftModel.proposed}`, String(w.swarm.draftModel.tokensPerStep), `${w.swarmDraftModelVsLocalPlain}× local plain`]
  ])
  const same = r.workloads.every((w) => [w.local.speculative, w.local.draftModel, w.swarm.speculative, w.swarm.draftModel].every((run) => run.identicalToPlain === true))
  return renderTable(['prompt', 'run', 'decode tok/s', 'acceptance of drafted', 'tokens/step', 'vs plain'], rows, [false, false, true, true, true, true]) +
    `\n\nspeculative tokens identical to plain decoding: ${same ? 'yes' : 'NO'}\n\n` +
    `one local step of n positions (blocks + LM head), ms: ${r.verifyCost.rows.map((n, i) => `${n}: ${r.verifyCost.msPerStep[i]} (${r.verifyCost.ratio[i]}×)`).join(', ')}\n` +
    `projected speedup at ${r.draftTokens} draft tokens for acceptance α: ${r.verifyCost.projected.map((p) => `α=${p.acceptance}: ${p.speedup}×`).join(', ')}`
}
