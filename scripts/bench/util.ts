// Small helpers shared by the benchmark sections.
import { fork, type Serializable } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { startSwarm, type TestSwarm } from '../../src/cli/local-swarm.ts'

/** Progress and status lines go to stderr, so stdout carries only the result tables. */
export function log (msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`)
}

export function formatBytes (n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${n} B`
}

export function median (xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

export const MiB = 1024 ** 2

/**
 * This process's RSS high-water mark, bytes. From /proc/self/status (VmHWM: this process's own
 * memory), not getrusage: Linux carries ru_maxrss across exec, so a child forked by a bench process
 * holding a model would report the parent's RSS as its own peak.
 */
export function peakRssBytes (): number {
  try {
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]
    if (kib !== undefined) return Number(kib) * 1024
  } catch { /* not Linux */ }
  return process.resourceUsage().maxRSS * 1024
}

/** Rounds for JSON output (keeps files readable without losing meaningful precision). */
export function round (x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** Deterministic pseudo-random token ids in [lo, hi) (mulberry32). */
export function randomTokens (n: number, lo: number, hi: number, seed: number): number[] {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return Array.from({ length: n }, () => lo + Math.floor(next() * (hi - lo)))
}

/**
 * Runs one job in a fresh child process (same loader flags as this process, i.e. tsx): `script`
 * receives `job` over IPC and answers { ok: true, result } or { ok: false, error }. Each job gets
 * its own process, so memory used by one cannot flatter or penalise the next.
 */
export async function runChild<T> (script: URL, job: Serializable, label: string): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const child = fork(script, [], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let settled = false
    child.on('message', (m: { ok: true, result: T } | { ok: false, error: { name: string, message: string, stack?: string } }) => {
      settled = true
      if (m.ok) { resolve(m.result); return }
      const err = new Error(`${label}: ${m.error.message}`)
      err.name = m.error.name
      if (m.error.stack !== undefined) err.stack = m.error.stack
      reject(err)
    })
    child.on('error', (err) => { if (!settled) { settled = true; reject(err) } })
    child.on('exit', (code, signal) => {
      if (settled) return
      settled = true
      reject(new Error(`${label}: benchmark process exited (${signal ?? `code ${code}`}) without a result` +
        (signal === 'SIGKILL' ? ' — killed, likely out of memory' : '')))
    })
    child.send(job)
  })
}

/**
 * The benches' loopback swarm: one `strata peer` process per span, started one at a time (each
 * loads its span alone), `threads` each, announcing a fast network so that planning is by compute.
 */
export async function startBenchSwarm (dir: string, spans: Array<[number, number]>, threads: number, flags: string[] = []): Promise<TestSwarm> {
  return await startSwarm(dir, spans, [], { flags: ['--threads', String(threads), '--network-mbps', '100000', ...flags], timeoutMs: 600_000, oneAtATime: true })
}
