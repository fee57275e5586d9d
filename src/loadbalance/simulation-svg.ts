// A self-contained SVG chart of a simulation: the weakest/mean block throughput over time for each
// policy, and the final per-block throughput as bar strips. Hand-written so that it needs no
// plotting dependency and diffs well.
import type { PolicyRun, SimulationResult } from './simulator.ts'

const WIDTH = 960
const MARGIN = { left: 70, right: 30 }
const PLOT_WIDTH = WIDTH - MARGIN.left - MARGIN.right
const COLORS: Record<PolicyRun['policy'], string> = { balanced: '#1f77b4', 'join-only': '#ff7f0e', random: '#d62728' }
/** The legend sits this far below the ratio panel, one line per policy. */
const LEGEND_OFFSET = 34
const LEGEND_LINE = 16
const STRIP_HEIGHT = 70
const STRIP_GAP = 36

interface Box {
  top: number
  height: number
}

export function renderSimulationSvg(result: SimulationResult): string {
  const ratioBox = { top: 70, height: 260 }
  const runs = policyRuns(result)
  const stripsTop = ratioBox.top + ratioBox.height + LEGEND_OFFSET + runs.length * LEGEND_LINE + 50
  const strips = runs.map((_, i) => ({ top: stripsTop + i * (STRIP_HEIGHT + STRIP_GAP), height: STRIP_HEIGHT }))
  const height = stripsTop + runs.length * (STRIP_HEIGHT + STRIP_GAP) + 10
  const barMax = Math.max(...runs.flatMap((r) => r.finalBlockThroughputs), 1)
  const c = result.config
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    text(MARGIN.left, 24, `strata load balancing: ${c.peers} peers, ${c.blocks} blocks, ${c.hours} h, churn ${c.churnPerHour}/h, ` +
      `${c.replacement * 100}% of leavers replaced, seed ${c.seed}`, 'font-size="16" font-weight="bold"'),
    ratioPanel(result, ratioBox),
    text(MARGIN.left, strips[0].top - 22, 'Final per-block throughput (tokens/s, online peers); dashed: mean', 'font-weight="bold"'),
    ...runs.map((run, i) => barStrip(run, strips[i], barMax, c.blocks)),
    '</svg>',
    ''
  ].join('\n')
}

/** Weakest/mean block throughput over time, one line per policy, with the target and settling period. */
function ratioPanel(result: SimulationResult, box: Box): string {
  const { hours, targetRatio, settleHours } = result.config
  const x = (hour: number): number => MARGIN.left + (hour / hours) * PLOT_WIDTH
  const y = (ratio: number): number => box.top + (1 - Math.max(0, Math.min(1, ratio))) * box.height
  const parts = [
    text(MARGIN.left, box.top - 14, 'Weakest block / mean block throughput (1 = perfectly balanced); shaded: settling, excluded from the summary', 'font-weight="bold"'),
    `<rect x="${x(0)}" y="${box.top}" width="${f(x(Math.min(settleHours, hours)) - x(0))}" height="${box.height}" fill="#eee"/>`
  ]
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(`<line x1="${x(0)}" x2="${x(hours)}" y1="${f(y(tick))}" y2="${f(y(tick))}" stroke="#ddd"/>`)
    parts.push(text(MARGIN.left - 8, y(tick) + 4, tick.toFixed(2), 'text-anchor="end"'))
  }
  for (const hour of hourTicks(hours)) parts.push(text(x(hour), box.top + box.height + 16, `${hour} h`, 'text-anchor="middle"'))
  parts.push(`<line x1="${x(0)}" x2="${x(hours)}" y1="${f(y(targetRatio))}" y2="${f(y(targetRatio))}" stroke="#2ca02c" stroke-dasharray="6 4"/>`)
  parts.push(text(x(hours) - 4, y(targetRatio) - 4, `target ${Math.round(targetRatio * 100)}%`, 'text-anchor="end" fill="#2ca02c"'))
  // Balanced last, so that it is drawn on top where the lines coincide.
  for (const run of policyRuns(result).reverse()) {
    const points = run.samples.map((s) => `${f(x(s.hour))},${f(y(s.minMeanRatio))}`).join(' ')
    parts.push(`<polyline points="${points}" fill="none" stroke="${COLORS[run.policy]}" stroke-width="1.5"/>`)
  }
  parts.push(legend(result, box))
  return parts.join('\n')
}

function legend(result: SimulationResult, box: Box): string {
  return policyRuns(result).map((run, i) => {
    const s = run.summary
    const top = box.top + box.height + LEGEND_OFFSET + i * LEGEND_LINE
    const label = `${run.policy}: mean ${s.meanMinMeanRatio.toFixed(2)}, worst ${s.worstMinMeanRatio.toFixed(2)}, ` +
      `samples with uncovered blocks ${s.samplesWithGaps}, min replicas ${s.minReplicas}, moves/peer/h ${s.movesPerPeerHour.toFixed(3)}`
    return `<rect x="${MARGIN.left}" y="${top - 9}" width="14" height="10" fill="${COLORS[run.policy]}"/>\n` + text(MARGIN.left + 20, top, label)
  }).join('\n')
}

/** One bar per block, shared scale across policies so their heights compare. */
function barStrip(run: PolicyRun, box: Box, max: number, blocks: number): string {
  const width = PLOT_WIDTH / blocks
  const y = (value: number): number => box.top + box.height * (1 - value / max)
  const values = run.finalBlockThroughputs
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)
  const bars = values.map((v, block) =>
    `<rect class="bar" x="${f(MARGIN.left + block * width)}" y="${f(y(v))}" width="${f(Math.max(0.5, width - 1))}" height="${f(box.top + box.height - y(v))}" fill="${COLORS[run.policy]}"/>`)
  return [
    text(MARGIN.left - 8, box.top + box.height / 2, run.policy, 'text-anchor="end"'),
    `<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_WIDTH}" y1="${box.top + box.height}" y2="${box.top + box.height}" stroke="#999"/>`,
    ...bars,
    `<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_WIDTH}" y1="${f(y(mean))}" y2="${f(y(mean))}" stroke="black" stroke-dasharray="4 3"/>`,
    text(MARGIN.left, box.top + box.height + 14, 'block 0'),
    text(MARGIN.left + PLOT_WIDTH, box.top + box.height + 14, `block ${blocks - 1}`, 'text-anchor="end"'),
    text(MARGIN.left + PLOT_WIDTH, box.top - 4, `min ${Math.min(...values).toFixed(0)}, mean ${mean.toFixed(0)}`, 'text-anchor="end"')
  ].join('\n')
}

function policyRuns(result: SimulationResult): PolicyRun[] {
  return [result.balanced, result.joinOnly, result.random]
}

/** About six evenly spaced whole-hour ticks. */
function hourTicks(hours: number): number[] {
  const step = Math.max(1, Math.ceil(hours / 6))
  const ticks: number[] = []
  for (let hour = 0; hour <= hours; hour += step) ticks.push(hour)
  return ticks
}

function text(x: number, y: number, content: string, attributes = ''): string {
  return `<text x="${f(x)}" y="${f(y)}" ${attributes}>${escapeXml(content)}</text>`
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** Coordinates with one decimal keep the file small and stable. */
function f(n: number): string {
  return n.toFixed(1)
}
