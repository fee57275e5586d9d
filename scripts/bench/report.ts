// Output of the benchmark: machine description, plain-text tables on stdout, one JSON file per
// section (bench-results/<section>.json).
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import type { LocalBenchResult } from './local.ts'

export interface MachineInfo {
  os: string
  cpuModel: string
  cores: number
  totalMemBytes: number
  node: string
  onnxruntime: string
  git: { commit: string, dirty: boolean } | null
}

export function machineInfo (): MachineInfo {
  const cpus = os.cpus()
  const require = createRequire(import.meta.url)
  let onnxruntime = 'unknown'
  try {
    onnxruntime = JSON.parse(readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8')).version
  } catch { /* leave unknown */ }
  let git: MachineInfo['git'] = null
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== ''
    git = { commit, dirty }
  } catch { /* not a git checkout */ }
  return {
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    totalMemBytes: os.totalmem(),
    node: process.version,
    onnxruntime,
    git
  }
}

export function renderTable (headers: string[], rows: string[][], alignRight: boolean[] = headers.map((_, i) => i > 0)): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const cell = (s: string, i: number): string => alignRight[i] ? s.padStart(widths[i]) : s.padEnd(widths[i])
  const line = (cells: string[]): string => '| ' + cells.map(cell).join(' | ') + ' |'
  const rule = '|' + widths.map((w, i) => alignRight[i] ? '-'.repeat(w + 1) + ':' : ':' + '-'.repeat(w + 1)).join('|') + '|'
  return [line(headers), rule, ...rows.map(line)].join('\n')
}

const fixed = (x: number | null | undefined, d: number): string => x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d)
const pct = (x: number | null | undefined): string => x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)}%`

export function machineLine (m: MachineInfo): string {
  return `${m.cpuModel}, ${m.cores} cores, ${(m.totalMemBytes / 1024 ** 3).toFixed(1)} GiB RAM, ${m.os}, Node ${m.node}, onnxruntime-node ${m.onnxruntime}` +
    (m.git !== null ? `, commit ${m.git.commit.slice(0, 10)}${m.git.dirty ? ' (dirty)' : ''}` : '')
}

export function renderLocal (r: LocalBenchResult): string {
  const s = r.shape
  const out: string[] = []
  out.push(`## local — ${s.name}`)
  out.push(`hidden ${s.hidden}, ${s.layers} layers, ${s.heads} heads / ${s.kvHeads} kv (head dim ${s.headDim}), intermediate ${s.intermediate}, vocab ${s.vocab}: ` +
    `${(s.params.totalParams / 1e9).toFixed(3)} B params (${(s.params.blockParams / 1e9).toFixed(3)} B in blocks). ` +
    `threads=${r.settings.threads}, prompt ${r.settings.promptTokens} tokens in one step, then ${r.settings.decodeTokens} greedy decode steps; ` +
    `median of ${r.settings.repeats} run(s) after a warm-up (uncontended runs only, when any${r.settings.idleWaitSeconds > 0 ? `; each run waits up to ${r.settings.idleWaitSeconds} s for the machine to go quiet` : ''}); head (embeddings + LM head) in f32 as LocalModel loads it.`)
  out.push('')
  out.push(renderTable(
    ['format', 'load s', 'peak RSS MiB', 'steady RSS MiB', 'prefill tok/s', 'decode tok/s', 'ms/token (span + head)', 'agree prefix', 'agree overall', 'teacher-forced', 'margin', 'CPU own/others'],
    r.formats.map((f) => [
      f.format,
      fixed(f.load.seconds, 1),
      String(f.memory.peakRssMiB),
      String(f.memory.rssSteadyMiB),
      fixed(f.prefill.tokensPerSecond, 1),
      fixed(f.decode.tokensPerSecond, 2),
      `${fixed(f.decode.msPerToken, 1)} (${fixed(f.decode.spanMsPerToken, 1)} + ${fixed(f.decode.headMsPerToken, 1)})`,
      pct(f.agreement?.prefixFraction),
      pct(f.agreement?.overallFraction),
      pct(f.agreement?.teacherForcedFraction),
      fixed(f.agreement?.medianRelativeMargin, 2),
      `${fixed(f.cpu.ownCores, 2)} / ${fixed(f.cpu.otherCores, 2)}`
    ])))
  const n = r.formats[0]?.agreement?.positions ?? r.settings.decodeTokens + 1
  out.push(`agreement: greedy tokens vs ${r.referenceFormat} over the ${n} generated tokens — "prefix" = positions before the first difference, ` +
    `"overall" = same token at the same index, "teacher-forced" = argmax of one prefill over prompt + ${r.referenceFormat}'s tokens ` +
    `(for ${r.referenceFormat} itself: batched prefill vs step-by-step decode); "margin" = median (top-1 − top-2) / std of the logits there. ` +
    '"steady RSS" = after the measured runs (right after loading, RSS still holds the JS copies of the weights until GC). ' +
    '"CPU own/others" = cores busy in this process / in all other processes during the measured runs (a busy machine lowers every speed).')
  const busy = r.formats.filter((f) => f.cpu.contended)
  if (busy.length > 0) {
    out.push(`warning: other processes used CPU during every measured run of ${busy.map((f) => `${f.format} (${f.cpu.otherCores.toFixed(2)} cores)`).join(', ')}: ` +
      'those speeds are low and the ratios skewed — rerun on an idle machine')
  }
  const dropped = r.formats.filter((f) => !f.cpu.contended && f.cpu.runsUsed < r.settings.repeats)
  if (dropped.length > 0) out.push(`note: contended runs left out of the medians: ${dropped.map((f) => `${f.format} ${r.settings.repeats - f.cpu.runsUsed}`).join(', ')}`)
  const nondet = r.formats.filter((f) => !f.deterministic).map((f) => f.format)
  if (nondet.length > 0) out.push(`warning: repeated runs produced different tokens for ${nondet.join(', ')}`)
  if (r.ratios.length > 0) {
    out.push('')
    out.push(`ratios vs ${r.referenceFormat}, measured in this run (>1 = more than ${r.referenceFormat}):`)
    out.push(renderTable(['format', 'decode speed', 'prefill speed', 'load time', 'peak RSS', 'steady RSS'],
      r.ratios.map((x) => [x.format, fixed(x.decodeSpeed, 2) + '×', fixed(x.prefillSpeed, 2) + '×', fixed(x.loadTime, 2) + '×', fixed(x.peakRss, 2) + '×', fixed(x.steadyRss, 2) + '×'])))
  }
  const lb = r.formats.filter((f) => f.loadBreakdown !== null)
  if (lb.length > 0) {
    out.push('')
    out.push('span load breakdown (separate process, same steps as SpanEngine.load):')
    out.push(renderTable(['format', 'build graph s', 'quantize + serialise s', 'onnxruntime session s', 'initializers MiB', 'external data', 'peak RSS MiB'],
      lb.map((f) => {
        const b = f.loadBreakdown!
        return [f.format, fixed(b.buildSeconds, 1), fixed(b.serializeSeconds, 1), fixed(b.sessionSeconds, 1), (b.initializerBytes / 1024 ** 2).toFixed(0), b.external ? 'yes' : 'no', (b.peakRssBytes / 1024 ** 2).toFixed(0)]
      })))
  }
  return out.join('\n')
}

export function writeJson (dir: string, section: string, body: unknown): string {
  mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `${section}.json`)
  writeFileSync(file, JSON.stringify(body, null, 2) + '\n')
  return file
}
