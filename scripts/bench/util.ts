// Small helpers shared by the benchmark sections.

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
