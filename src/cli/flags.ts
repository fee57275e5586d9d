// Flag parsers shared by the subcommands; each rejects bad values with a clear message.
import { InvalidArgumentError } from 'commander'

export function int (min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v)
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in [${min}, ${max}], got "${v}"`)
    return n
  }
}

export function num (min: number, max = Infinity) {
  return (v: string): number => {
    const n = Number(v)
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number in [${min}, ${max}], got "${v}"`)
    return n
  }
}

export function idList (v: string): number[] {
  const parts = v.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (parts.length === 0 || !parts.every((s) => /^\d+$/.test(s))) throw new InvalidArgumentError(`expected comma-separated token ids like 1,2,3, got "${v}"`)
  return parts.map(Number)
}

export function collect (v: string, prev: string[] = []): string[] {
  return [...prev, v]
}

export function span (v: string): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(v.trim())
  if (m === null || Number(m[1]) >= Number(m[2])) throw new InvalidArgumentError(`expected START:END with START < END (END exclusive), got "${v}"`)
  return [Number(m[1]), Number(m[2])]
}
