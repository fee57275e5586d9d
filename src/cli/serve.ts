import { Option, type Command } from 'commander'
import { GatewayServer } from '../serve/serve.ts'
import { int, num, collect, warnUnknownConfig, addSpeculationOptions, draftModelOf, ALLOW_UNKNOWN_CONFIG_HELP } from './flags.ts'

export function registerServe (program: Command): void {
  const cmd = program.command('serve')
    .description('OpenAI-compatible HTTP gateway to the swarm, with /health, /metrics and a dashboard at /')
    .requiredOption('--model <dir>', 'model directory (config, tokenizer, embeddings and head; block weights are not read)')
    .requiredOption('--bootstrap <multiaddr>', 'bootstrap peer of the swarm (repeatable)', collect, [])
    .option('--port <n>', 'HTTP port (0 picks a free one)', int(0, 65535), 8080)
    .option('--host <host>', 'HTTP listen address (0.0.0.0 to serve other machines)', '127.0.0.1')
    .option('--model-id <id>', 'model id in the swarm (default: derived from config.json)')
    .option('--body-limit-kb <n>', 'largest request body accepted, KiB', int(1), 1024)
    .option('--threads <n>', 'compute threads for the embeddings and head (and a local audit referee)', int(1))
    .addOption(new Option('--head-format <format>', 'embeddings and LM head: f32 is exact; f16/int8/int4 read less per token').choices(['f32', 'f16', 'int8', 'int4']).default('f32'))
    .option('--audit-rate <r>', 'share of hop steps also sent to a replica serving the same blocks and compared (0 = off; needs no block weights); peers caught lying are excluded', num(0, 1), 0)
    .addOption(new Option('--audit-referee <who>', 'who settles a peer/replica disagreement: auto = the block weights in --model when present, else a third peer; replicas = third peers only').choices(['auto', 'replicas']).default('auto'))
    .option('--no-direct', 'keep every hop on its libp2p stream (no direct TCP data path for session steps)')
    .option('--push', 'server-to-server push: each peer sends its output straight to the next, one network traversal per hop instead of two (not with --audit-rate)')
  addSpeculationOptions(cmd, 'speculative decoding for every request')
    .option('--allow-unknown-config', ALLOW_UNKNOWN_CONFIG_HELP)
    .option('--json', 'print the listening line as JSON')
    .action(async (o) => {
      if (o.push === true && o.auditRate > 0) throw new Error('--push cannot be combined with --audit-rate: peers push their outputs to each other, so the gateway never sees the intermediate outputs audits compare')
      warnUnknownConfig(o.model, o.allowUnknownConfig)
      const draftModel = draftModelOf(o)
      const server = await GatewayServer.start({
        modelDir: o.model,
        allowUnknownConfig: o.allowUnknownConfig === true,
        bootstrap: o.bootstrap,
        modelId: o.modelId,
        port: o.port,
        host: o.host,
        bodyLimit: o.bodyLimitKb * 1024,
        threads: o.threads,
        headFormat: o.headFormat,
        auditRate: o.auditRate,
        auditReferee: o.auditReferee,
        speculate: o.speculate,
        draftModel,
        push: o.push === true,
        direct: o.direct !== false
      })
      if (o.json === true) process.stdout.write(JSON.stringify({ event: 'listening', url: server.url, model: server.modelId }) + '\n')
      else process.stdout.write(`strata serve: ${server.url}/v1 (model ${server.modelId}); dashboard ${server.url}/\n`)
      let stopping = false
      const shutdown = (signal: string): void => {
        if (stopping) return
        stopping = true
        process.stderr.write(`${signal}: closing the gateway…\n`)
        server.close().then(() => process.exit(0), (err: Error) => { process.stderr.write(`strata: error while stopping: ${err.message}\n`); process.exit(1) })
      }
      process.on('SIGINT', () => { shutdown('SIGINT') })
      process.on('SIGTERM', () => { shutdown('SIGTERM') })
    })
}
