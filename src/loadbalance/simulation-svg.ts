// A self-contained SVG chart of the load-balancing scenarios: one panel per scenario with a line
// per policy over time (weakest/mean block throughput, or the share of client sessions served when
// the scenario has clients), the scenario's shocks marked, and each policy's summary beneath.
// Hand-written so that it needs no plotting dependency and diffs well.
import type { ScenarioResult } from './scenarios.ts'
import type { PolicyName, PolicyRun, Sample, SimulationResult } from './simulator.ts'

const WIDTH = 960
const MARGIN = { left: 70, right: 30 }
const PLOT_WIDTH = WIDTH - MARGIN.left - MARGIN.right
const COLORS: Record<PolicyName, string> = { balanced: '#1f77b4', 'throughput-only': '#2ca02c', 'join-only': '#ff7f0e', random: '#d62728' }
const PLOT_HEIGHT = 180
/** Space above a plot for the scenario's title and the axis label. */
const PANEL_HEAD = 44
/** Space below a plot for the hour ticks. */
const TICKS = 26
const LEGEND_LINE = 16
const PANEL_GAP = 28

export function renderSimulationSvg(results: readonly ScenarioResult[]): string {
  const panels: string[] = []
  let top = 50
  for (const r of results) {
    panels.push(panel(r, top))
    top += panelHeight(r.result)
  }
  const height = top + 10
  const c = results[0]?.result.config
  const subtitle = c === undefined ? '' : `${c.peers} peers, ${c.blocks} blocks, ${c.hours} h, seed ${c.seed}; shaded: settling, left out of the summary`
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    text(MARGIN.left, 22, 'strata load balancing: balanced vs join-only vs random span choice', 'font-size="16" font-weight="bold"'),
    text(MARGIN.left, 40, subtitle),
    ...panels,
    '</svg>',
    ''
  ].join('\n')
}

function panelHeight(result: SimulationResult): number {
  return PANEL_HEAD + PLOT_HEIGHT + TICKS + result.runs.length * LEGEND_LINE + PANEL_GAP
}

/** Served sessions when the scenario has clients (that is what it is about), else weakest/mean. */
function metric(result: SimulationResult): { label: string, value: (s: Sample) => number } {
  if (result.clientSessions > 0) {
    return { label: `share of the ${result.clientSessions} client sessions served at full speed`, value: (s) => s.servedSessions / result.clientSessions }
  }
  return { label: 'weakest block / mean block throughput (1 = perfectly balanced)', value: (s) => s.minMeanRatio }
}

function panel({ scenario, result }: ScenarioResult, top: number): string {
  const { hours, settleHours, targetRatio } = result.config
  const box = { top: top + PANEL_HEAD, height: PLOT_HEIGHT }
  const x = (hour: number): number => MARGIN.left + (hour / hours) * PLOT_WIDTH
  const y = (v: number): number => box.top + (1 - Math.max(0, Math.min(1, v))) * box.height
  const { label, value } = metric(result)
  const parts = [
    text(MARGIN.left, top + 16, `${scenario.name}: ${scenario.title}`, 'font-weight="bold"'),
    text(MARGIN.left, top + 34, label),
    `<rect x="${x(0)}" y="${box.top}" width="${f(x(Math.min(settleHours, hours)) - x(0))}" height="${box.height}" fill="#eee"/>`
  ]
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(`<line x1="${x(0)}" x2="${x(hours)}" y1="${f(y(tick))}" y2="${f(y(tick))}" stroke="#ddd"/>`)
    parts.push(text(MARGIN.left - 8, y(tick) + 4, tick.toFixed(2), 'text-anchor="end"'))
  }
  for (const hour of hourTicks(hours)) parts.push(text(x(hour), box.top + box.height + 16, `${hour} h`, 'text-anchor="middle"'))
  if (result.clientSessions === 0) {
    parts.push(`<line x1="${x(0)}" x2="${x(hours)}" y1="${f(y(targetRatio))}" y2="${f(y(targetRatio))}" stroke="#2ca02c" stroke-dasharray="6 4"/>`)
  }
  for (const [hour, what] of shocks(result)) {
    parts.push(`<line class="shock" x1="${f(x(hour))}" x2="${f(x(hour))}" y1="${box.top}" y2="${box.top + box.height}" stroke="black" stroke-dasharray="3 3"/>`)
    parts.push(text(x(hour) + 4, box.top + 12, what))
  }
  // Balanced last, so that it is drawn on top where the lines coincide.
  for (const run of [...result.runs].reverse()) {
    const points = run.samples.map((s) => `${f(x(s.hour))},${f(y(value(s)))}`).join(' ')
    parts.push(`<polyline points="${points}" fill="none" stroke="${COLORS[run.policy]}" stroke-width="1.5"/>`)
  }
  result.runs.forEach((run, i) => {
    const line = box.top + box.height + TICKS + (i + 1) * LEGEND_LINE - 4
    parts.push(`<rect x="${MARGIN.left}" y="${line - 9}" width="14" height="10" fill="${COLORS[run.policy]}"/>`)
    parts.push(text(MARGIN.left + 20, line, summaryLine(run, result)))
  })
  return parts.join('\n')
}

function summaryLine(run: PolicyRun, result: SimulationResult): string {
  const s = run.summary
  const parts = [
    `${run.policy}: weakest/mean ${s.meanMinMeanRatio.toFixed(2)} (worst ${s.worstMinMeanRatio.toFixed(2)})`,
    `samples with uncovered blocks ${s.samplesWithGaps}`,
    `capacity ${s.meanMinThroughput.toFixed(0)} tok/s`,
    `moves/peer/h ${s.movesPerPeerHour.toFixed(3)}`
  ]
  if (result.config.rangeLoss !== undefined) parts.push(`coverage back after ${s.restoreMinutes === null ? 'never' : `${s.restoreMinutes.toFixed(0)} min`}`)
  if (result.clientSessions > 0) parts.push(`sessions served ${s.meanServedSessions.toFixed(0)}/${result.clientSessions}`)
  return parts.join(', ')
}

/** Moments worth marking: the range loss and the end of its pause, the shrink, the regrowth. */
function shocks(result: SimulationResult): Array<[number, string]> {
  const { rangeLoss, shrink } = result.config
  const out: Array<[number, string]> = []
  if (rangeLoss !== undefined) out.push([rangeLoss.atHour, `blocks ${rangeLoss.start}-${rangeLoss.end - 1} lost`], [rangeLoss.atHour + rangeLoss.pauseHours, 'arrivals resume'])
  if (shrink !== undefined) out.push([shrink.atHour, 'shrinking'], [shrink.regrowAtHour, 'growing back'])
  return out.filter(([hour]) => hour <= result.config.hours)
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
