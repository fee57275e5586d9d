import type { Command } from 'commander'
import { loadModelConfig, modelIdFor } from '../shards/config.ts'
import { createSwarmNode, waitForRoutingTable } from '../routing/index.ts'
import { SwarmHealthProbe, recordOfPeer, type ProbeTarget } from '../serve/health-probe.ts'
import { renderHealthTable } from '../serve/health-table.ts'
import { collect, int } from './flags.ts'
import { CLEAR_SCREEN, decorates } from './terminal.ts'

export function registerHealth (program: Command): void {
  program.command('health')
    .description('coverage, throughput and peers of a model in the swarm (from any machine that reaches a bootstrap peer)')
    .requiredOption('--bootstrap <multiaddr>', 'bootstrap peer of the swarm (repeatable)', collect, [])
    .option('--model-id <id>', 'model id (default: from --model, else the model the bootstrap peer serves)')
    .option('--model <dir>', 'model directory: its id and block count')
    .option('--watch', 'refresh until interrupted')
    .option('--interval-ms <n>', 'refresh period with --watch, ms', int(200), 2000)
    .option('--connect-timeout-ms <n>', 'how long to wait for a bootstrap peer, ms', int(100), 10_000)
    .option('--json', 'print the report as one JSON object (one per refresh with --watch)')
    .action(async (o) => {
      const controller = new AbortController()
      process.once('SIGINT', () => { controller.abort(new Error('interrupted')) })
      const node = await createSwarmNode({ bootstrap: o.bootstrap, dhtMode: 'client' })
      try {
        await waitForRoutingTable(node, 1, deadline(o.connectTimeoutMs, controller.signal)).catch((err: Error) => {
          throw new Error(`could not reach any bootstrap peer (${o.bootstrap.join(', ')}): ${err.message}`)
        })
        const target: ProbeTarget = o.modelId !== undefined
          ? { modelId: o.modelId, numBlocks: o.model !== undefined ? loadModelConfig(o.model).numLayers : undefined }
          : o.model !== undefined
            ? { modelId: modelIdFor(o.model), numBlocks: loadModelConfig(o.model).numLayers }
            : { modelId: (await recordOfPeer(node, o.bootstrap[0])).modelId }
        const probe = new SwarmHealthProbe(node, target)
        // --watch redraws the screen on a terminal; into a pipe or file, reports follow each other
        const redraw = o.watch === true && decorates(process.stdout)
        let first = true
        do {
          const started = Date.now()
          // not cancelled midway: a report takes well under a second, and its own deadlines bound it
          const report = await probe.report()
          if (o.json === true) process.stdout.write(JSON.stringify(report) + '\n')
          else process.stdout.write((redraw ? CLEAR_SCREEN : first ? '' : '\n') + renderHealthTable(report))
          first = false
          if (o.watch === true) await sleep(Math.max(0, o.intervalMs - (Date.now() - started)), controller.signal)
        } while (o.watch === true && !controller.signal.aborted)
      } catch (err) {
        if (!controller.signal.aborted) throw err
      } finally {
        await node.stop()
      }
    })
}

/**
 * Aborts after `ms` or with `parent`. Not AbortSignal.any([parent, AbortSignal.timeout(ms)]): on
 * Node 20 the timeout is lost once garbage collected, and the wait would never end.
 */
function deadline (ms: number, parent: AbortSignal): AbortSignal {
  const controller = new AbortController()
  const timer = setTimeout(() => { controller.abort(new Error(`timed out after ${ms} ms`)) }, ms).unref()
  parent.addEventListener('abort', () => { clearTimeout(timer); controller.abort(parent.reason) }, { once: true })
  return controller.signal
}

/** Resolves after `ms`, or early when `signal` aborts. */
async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const wake = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', wake)
      resolve()
    }
    const timer = setTimeout(wake, ms)
    signal.addEventListener('abort', wake, { once: true })
  })
}
