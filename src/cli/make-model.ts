import type { Command } from 'commander'
import { Option } from 'commander'
import cliProgress from 'cli-progress'
import { makeModel } from '../shards/make-model.ts'
import { int, num } from './flags.ts'
import { decorates } from './terminal.ts'

export function registerMakeModel (program: Command): void {
  program.command('make-model')
    .description('write a deterministic random-weight Llama-family model directory (Hugging Face format)')
    .requiredOption('--out <dir>', 'output directory')
    .requiredOption('--layers <n>', 'transformer blocks', int(1))
    .requiredOption('--hidden <n>', 'hidden size', int(16))
    .requiredOption('--heads <n>', 'attention heads', int(1))
    .requiredOption('--kv-heads <n>', 'key/value heads (GQA when fewer than --heads)', int(1))
    .requiredOption('--intermediate <n>', 'MLP intermediate size', int(1))
    .requiredOption('--vocab <n>', 'vocabulary size (≥ 259 for a tokenizer.json)', int(2))
    .requiredOption('--seed <n>', 'PRNG seed', int(0, 2 ** 31))
    .addOption(new Option('--dtype <dtype>', 'weight dtype').choices(['f32', 'f16', 'bf16']).default('f32'))
    .addOption(new Option('--arch <family>', 'block family: llama, mistral (sliding window), qwen2 (q/k/v biases), qwen3 (q/k norms)').choices(['llama', 'mistral', 'qwen2', 'qwen3']).default('llama'))
    .addOption(new Option('--config-form <form>', 'config.json as older transformers (v4: rope_theta, torch_dtype) or transformers 5 (v5: rope_parameters, dtype) writes it').choices(['v4', 'v5']).default('v4'))
    .option('--head-dim <n>', 'head dim (default: hidden / heads)', int(2))
    .option('--rope-theta <n>', 'rope base frequency', num(1), 10000)
    .option('--sliding-window <n>', 'with --arch mistral: attention window, positions', int(1))
    .option('--max-positions <n>', 'max_position_embeddings', int(1), 2048)
    .option('--tie-embeddings', 'tie the LM head to the embeddings (no lm_head tensor)')
    .option('--shard-mb <n>', 'split weights into shards of about this many MiB', int(1))
    .action((o) => {
      const bar = decorates(process.stderr) ? new cliProgress.SingleBar({ format: 'make-model [{bar}] {percentage}% {value}/{total} MiB', stream: process.stderr }, cliProgress.Presets.shades_classic) : null
      bar?.start(1, 0)
      makeModel({
        out: o.out,
        layers: o.layers,
        hidden: o.hidden,
        heads: o.heads,
        kvHeads: o.kvHeads,
        intermediate: o.intermediate,
        vocab: o.vocab,
        seed: o.seed,
        dtype: o.dtype,
        arch: o.arch,
        configForm: o.configForm,
        headDim: o.headDim,
        ropeTheta: o.ropeTheta,
        slidingWindow: o.slidingWindow,
        maxPositions: o.maxPositions,
        tieEmbeddings: o.tieEmbeddings === true,
        shardBytes: o.shardMb !== undefined ? o.shardMb * 1024 * 1024 : undefined,
        onProgress: (done, total) => { bar?.setTotal(Math.ceil(total / 2 ** 20)); bar?.update(Math.floor(done / 2 ** 20)) }
      })
      bar?.stop()
      process.stderr.write(`wrote ${o.out}\n`)
    })
}
