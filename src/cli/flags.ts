// Flag parsers shared by the subcommands; each rejects bad values with a clear message.
import { InvalidArgumentError, Option, type Command } from 'commander'
import { multiaddr } from '@multiformats/multiaddr'
import { loadModelConfig } from '../shards/config.ts'
import type { WeightFormat } from '../shards/span-graph.ts'
import type { DraftModelOptions } from '../client/draft-model.ts'

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

/** collects multiaddrs (repeatable flag), each checked as one */
export function multiaddrList (v: string, prev: string[] = []): string[] {
  try {
    multiaddr(v)
  } catch (err) {
    throw new InvalidArgumentError(`expected a multiaddr like /ip4/203.0.113.7/tcp/4001, got "${v}" (${(err as Error).message})`)
  }
  return [...prev, v]
}

export function span (v: string): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(v.trim())
  if (m === null || Number(m[1]) >= Number(m[2])) throw new InvalidArgumentError(`expected START:END with START < END (END exclusive), got "${v}"`)
  return [Number(m[1]), Number(m[2])]
}

export const ALLOW_UNKNOWN_CONFIG_HELP = 'proceed past config.json keys strata does not know (they may change the math: output can be wrong)'

/**
 * With --allow-unknown-config: reads the config once to list the keys nobody has classified and
 * warns loudly on stderr (every line, so it survives log filtering). Without it, does nothing:
 * loading then fails on the first unknown key, naming it.
 */
export function warnUnknownConfig (modelDir: string, allow: boolean | undefined): void {
  if (allow !== true) return
  const keys = loadModelConfig(modelDir, { allowUnknownKeys: true }).unknownKeys
  if (keys.length === 0) return
  for (const key of keys) {
    process.stderr.write(`WARNING: config.json key "${key}" is unknown to strata and IGNORED (--allow-unknown-config): if it changes the model's math, every output is wrong\n`)
  }
}

/** `--speculate`, `--draft-model` and `--draft-format`, as `generate` and `serve` take them. */
export function addSpeculationOptions (cmd: Command, speculateHelp: string): Command {
  return cmd
    .option('--speculate <k>', `${speculateHelp}: draft up to k tokens per step by prompt lookup (or --draft-model) and verify them in one pass (same tokens; 0 = off)`, int(0, 64), 0)
    .option('--draft-model <dir>', 'with --speculate: a local model sharing the tokenizer drafts instead of prompt lookup (a smaller model, or this one quantized)')
    .addOption(new Option('--draft-format <format>', 'the draft model\'s weights on load').choices(['f32', 'f16', 'int8', 'int4']).default('int8'))
}

/** The draft model the speculation options ask for (refused without --speculate). */
export function draftModelOf (o: { speculate: number, draftModel?: string, draftFormat: WeightFormat, allowUnknownConfig?: boolean }): DraftModelOptions | undefined {
  if (o.draftModel === undefined) return undefined
  if (o.speculate === 0) throw new Error('--draft-model drafts for speculative decoding: give --speculate K too')
  return { dir: o.draftModel, weightFormat: o.draftFormat, allowUnknownConfig: o.allowUnknownConfig === true }
}
