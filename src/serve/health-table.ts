// Text rendering of a health report for terminals: per-block coverage bars and a peer table.
import type { HealthReport } from './health.ts'

const LEVELS = '▁▂▃▄▅▆▇█'
const UNCOVERED = '✗'
/** blocks per bar line */
const BAR_WIDTH = 64

export function renderHealthTable (report: HealthReport, now = Date.now()): string {
  const lines: string[] = []
  const online = report.peers.filter((p) => p.state === 'online').length
  lines.push(`model ${report.model} · ${report.numBlocks} blocks${report.numBlocksKnown ? '' : ' (inferred from spans)'} · ${report.peers.length} peers (${online} online) · ${report.generatedAt}`)
  lines.push('')
  lines.push(...coverage(report))
  lines.push('')
  lines.push(...peerTable(report, now))
  return lines.join('\n') + '\n'
}

function coverage (report: HealthReport): string[] {
  const { blocks } = report
  if (blocks.length === 0) return ['coverage  (no blocks known: no peer of this model was found)']
  const maxPeers = Math.max(...blocks.map((b) => b.peers))
  const maxThroughput = Math.max(...blocks.map((b) => b.throughput))
  const level = (v: number, max: number): string => v <= 0 ? UNCOVERED : LEVELS[Math.min(LEVELS.length - 1, Math.ceil((v / max) * LEVELS.length) - 1)]
  const out: string[] = []
  for (let from = 0; from < blocks.length; from += BAR_WIDTH) {
    const row = blocks.slice(from, from + BAR_WIDTH)
    const label = blocks.length > BAR_WIDTH ? ` blocks ${from}–${from + row.length - 1}` : ''
    out.push(`replicas  ${row.map((b) => level(b.peers, maxPeers)).join('')}${label}`)
    out.push(`tok/s     ${row.map((b) => level(b.throughput, maxThroughput)).join('')}`)
  }
  const covered = blocks.filter((b) => b.peers > 0)
  if (covered.length > 0) {
    const weakest = covered.reduce((a, b) => b.throughput < a.throughput ? b : a)
    out.push(`          replicas ${Math.min(...blocks.map((b) => b.peers))}–${maxPeers} per block; weakest block ${weakest.index}: ${fmt(weakest.throughput)} tok/s`)
  }
  out.push(report.missingBlocks.length === 0 ? '          every block is covered' : `          ${UNCOVERED} uncovered: ${ranges(report.missingBlocks)}`)
  return out
}

function peerTable (report: HealthReport, now: number): string[] {
  if (report.peers.length === 0) return ['no reachable peers']
  const header = ['peer', 'span', 'state', 'tok/s', 'latency', 'slots', 'cache', 'version', 'last seen']
  const rows = report.peers.map((p) => [
    `…${p.peerId.slice(-8)}`,
    `[${p.start},${p.end})`,
    p.state,
    fmt(p.throughput),
    `${p.latencyMs.toFixed(1)} ms`,
    slots(p.sessions, p.maxSessions),
    String(p.cacheTokensLeft),
    p.version,
    ago(now - Date.parse(p.lastSeen))
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  return [line(header), ...rows.map(line)]
}

/** sessions in use of the peer's slots, "3/16"; "?" where an older peer's record does not say */
function slots (sessions: number | undefined, max: number | undefined): string {
  return `${sessions ?? '?'}/${max ?? '?'}`
}

function fmt (n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1)
}

function ago (ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  return s < 120 ? `${s}s ago` : `${Math.round(s / 60)}m ago`
}

/** [1,2,3,7] → "1–3, 7" */
function ranges (xs: number[]): string {
  const out: string[] = []
  for (let i = 0; i < xs.length;) {
    let j = i
    while (j + 1 < xs.length && xs[j + 1] === xs[j] + 1) j++
    out.push(i === j ? String(xs[i]) : `${xs[i]}–${xs[j]}`)
    i = j + 1
  }
  return out.join(', ')
}
