import type { Command } from 'commander'
import { Option } from 'commander'
import { LocalModel } from '../client/local-model.ts'
import { Swarm } from '../client/swarm.ts'
import type { AuditEvent, RerouteEvent } from '../routing/index.ts'
import type { GenerationEvent } from '../client/session.ts'
import { int, num, idList, collect, warnUnknownConfig, addSpeculationOptions, draftModelOf, ALLOW_UNKNOWN_CONFIG_HELP } from './flags.ts'
import { buildConversation } from './conversation.ts'

export function registerGenerate (program: Command): void {
  const cmd = program.command('generate')
    .description('generate text: locally without --bootstrap, through the swarm with it')
    .requiredOption('--model <dir>', 'model directory (config, tokenizer; block weights only when local)')
    .option('--prompt <text>', 'prompt text')
    .option('--prompt-ids <ids>', 'prompt as comma-separated token ids', idList)
    .option('--chat', 'send --prompt as a user message through the model\'s chat template')
    .option('--system <text>', 'system message before the conversation (implies --chat)')
    .option('--messages <file>', 'a whole conversation, a JSON array of {"role","content"}, through the chat template (implies --chat; --prompt adds a last user turn)')
    .option('--max-new-tokens <n>', 'tokens to generate at most', int(0), 32)
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', num(0), 0)
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = off)', int(0), 0)
    .option('--top-p <p>', 'nucleus sampling mass', num(0, 1), 1)
    .option('--repetition-penalty <r>', 'penalise tokens already seen (1 = off)', num(0), 1)
    .option('--seed <n>', 'sampling seed', int(0, 2 ** 32 - 1))
    .option('--ignore-eos', 'keep generating past the end-of-sequence token')
  addSpeculationOptions(cmd, 'speculative decoding')
    .option('--bootstrap <multiaddr>', 'bootstrap peer of the swarm (repeatable)', collect, [])
    .option('--no-hole-punch', 'stay on relayed connections to peers behind NAT (no DCUtR upgrade to direct ones)')
    .option('--no-direct', 'keep every hop on its libp2p stream (no direct TCP data path for session steps)')
    .option('--push', 'server-to-server push: each peer sends its output straight to the next, one network traversal per hop instead of two (not with --verify or --audit-rate)')
    .option('--verify', 'check every peer\'s output against local recomputation (needs the block weights) and route around peers that differ')
    .option('--audit-rate <r>', 'share of hop steps also sent to a replica serving the same blocks and compared (0 = off; needs no block weights); peers caught lying are excluded', num(0, 1), 0)
    .addOption(new Option('--audit-referee <who>', 'who settles a peer/replica disagreement: auto = the block weights in --model when present, else a third peer; replicas = third peers only').choices(['auto', 'replicas']).default('auto'))
    .addOption(new Option('--quantize <format>', 'local weights: quantize on load').choices(['int8', 'int4']))
    .addOption(new Option('--head-format <format>', 'embeddings and LM head on this side: f32 is exact; f16/int8/int4 read less per token').choices(['f32', 'f16', 'int8', 'int4']).default('f32'))
    .option('--threads <n>', 'compute threads per engine (local blocks, head; with --verify also each verifying span)', int(1))
    .option('--allow-unknown-config', ALLOW_UNKNOWN_CONFIG_HELP)
    .option('--coverage-wait-ms <n>', 'swarm: when some blocks have no peer left, wait this long for peers to move in before failing', int(0), 3_000)
    .option('--json', 'print one JSON event per line')
    .action(async (o) => {
      const chat = o.chat === true || o.system !== undefined || o.messages !== undefined
      if (o.promptIds !== undefined ? o.prompt !== undefined || chat : o.prompt === undefined && o.messages === undefined) {
        throw new Error('give --prompt TEXT, --messages FILE.json (with or without --prompt), or --prompt-ids alone (token ids do not go through the chat template)')
      }
      if (o.verify === true && o.bootstrap.length === 0) throw new Error('--verify checks swarm peers: give --bootstrap too')
      if (o.auditRate > 0 && o.bootstrap.length === 0) throw new Error('--audit-rate checks swarm peers: give --bootstrap too')
      if (o.auditRate > 0 && o.verify === true) throw new Error('--verify recomputes every hop step locally; --audit-rate cross-checks a share of them against replicas: give one of them')
      if (o.push === true && o.bootstrap.length === 0) throw new Error('--push chains swarm peers: give --bootstrap too')
      if (o.push === true && (o.verify === true || o.auditRate > 0)) {
        throw new Error(`--push cannot be combined with ${o.verify === true ? '--verify' : '--audit-rate'}: peers push their outputs to each other, so the client never sees the intermediate outputs it checks`)
      }
      const draftModel = draftModelOf(o)
      warnUnknownConfig(o.model, o.allowUnknownConfig)
      const allowUnknownConfig = o.allowUnknownConfig === true
      const prompt = o.promptIds !== undefined
        ? { ids: o.promptIds }
        : chat ? { messages: buildConversation({ messages: o.messages, system: o.system, prompt: o.prompt }) } : { text: o.prompt }
      const opts = {
        maxNewTokens: o.maxNewTokens,
        temperature: o.temperature,
        topK: o.topK,
        topP: o.topP,
        repetitionPenalty: o.repetitionPenalty,
        seed: o.seed,
        ignoreEos: o.ignoreEos === true,
        speculate: o.speculate
      }
      const controller = new AbortController()
      process.once('SIGINT', () => { controller.abort(new Error('interrupted')) })
      if (o.bootstrap.length > 0) {
        const swarm = await Swarm.connect({ bootstrap: o.bootstrap, modelDir: o.model, threads: o.threads, headFormat: o.headFormat, verify: o.verify === true, auditRate: o.auditRate, auditReferee: o.auditReferee, allowUnknownConfig, coverageWaitMs: o.coverageWaitMs, holePunch: o.holePunch !== false, push: o.push === true, direct: o.direct !== false, draftModel, signal: controller.signal })
        try {
          const onReroute = (e: RerouteEvent): void => {
            if (o.json !== true) process.stderr.write(`\n[re-routed around ${e.failedPeer.slice(-8)} (${e.reason}) for blocks [${e.start}, ${e.end}) in ${e.recoveryMs.toFixed(0)} ms]\n`)
          }
          const onAudit = (e: AuditEvent): void => {
            if (o.json === true || (e.outcome !== 'liar' && e.outcome !== 'replica_liar')) return
            const liar = e.outcome === 'liar' ? e.peer : e.replica ?? ''
            process.stderr.write(`\n[audit: ${liar.slice(-8)} computed wrong outputs for blocks [${e.start}, ${e.end}) (referee ${e.referee === 'local' ? 'local weights' : e.referee?.slice(-8)}); excluded]\n`)
          }
          await printEvents(swarm.generate(prompt, { ...opts, signal: controller.signal, onReroute, onAudit }), o.json === true, swarm.tokenizer !== null)
        } finally {
          await swarm.close()
        }
        return
      }
      const model = await LocalModel.load(o.model, { weightFormat: o.quantize, headFormat: o.headFormat, threads: o.threads, allowUnknownConfig, draftModel })
      try {
        await printEvents(model.generate(prompt, { ...opts, signal: controller.signal }), o.json === true, model.hasTokenizer)
      } finally {
        await model.close()
      }
    })
}

/** Streams text (or JSON lines) to stdout; a short summary goes to stderr in text mode. */
export async function printEvents (events: AsyncIterable<GenerationEvent>, json: boolean, hasTokenizer: boolean): Promise<void> {
  for await (const e of events) {
    if (json) {
      process.stdout.write(JSON.stringify(e.event === 'token' ? { event: 'token', index: e.index, token: e.token, route: e.route } : e) + '\n')
    } else if (e.event === 'token') {
      process.stdout.write(hasTokenizer ? e.text : `${e.index === 0 ? '' : ','}${e.token}`)
    } else {
      process.stdout.write('\n')
      const verified = e.verifiedSteps === undefined ? '' : `, ${e.verifiedSteps} hop steps verified`
      const audited = e.audit === undefined ? '' : `, ${e.audit.agreed}/${e.audit.sampled} audited hop steps confirmed by replicas`
      const rejected = e.rejectedPeers === undefined || e.rejectedPeers.length === 0 ? '' : `, wrong outputs from ${e.rejectedPeers.map((p) => p.slice(-8)).join(', ')}`
      const spec = e.speculation === undefined ? '' : `, ${e.speculation.accepted}/${e.speculation.proposed} drafted tokens accepted`
      process.stderr.write(`[${e.tokens.length} tokens, ${e.tokensPerSecond.toFixed(1)} tok/s, first token ${e.timeToFirstTokenMs.toFixed(0)} ms${e.reroutes > 0 ? `, ${e.reroutes} re-routes` : ''}${spec}${verified}${audited}${rejected}]\n`)
    }
  }
}
