import type { Command } from 'commander'
import { Option } from 'commander'
import { PeerServer } from '../peer/server.ts'
import { int, num, collect, multiaddrList, span, warnUnknownConfig, ALLOW_UNKNOWN_CONFIG_HELP } from './flags.ts'

const MIB = 1024 * 1024

export function registerPeer (program: Command): void {
  program.command('peer')
    .description('serve a span of transformer blocks to the swarm')
    .requiredOption('--model <dir>', 'model directory (only the hosted blocks are read)')
    .option('--blocks <start:end>', 'host exactly these blocks (END exclusive)', span)
    .option('--num-blocks <n>', 'host this many blocks, placed by the load balancer', int(1))
    .option('--max-memory-mb <n>', 'without --blocks/--num-blocks: host as many blocks as fit this much memory, MiB (default: half the free memory)', int(1))
    .option('--listen <multiaddr>', 'listen address (repeatable)', collect, [])
    .option('--bootstrap <multiaddr>', 'bootstrap peer (repeatable); none starts a new swarm', collect, [])
    .addOption(new Option('--relay <mode>', 'relay for peers behind NAT: auto = once AutoNAT confirms a public address of this peer').choices(['auto', 'on', 'off']).default('auto'))
    .option('--announce <multiaddr>', 'announce this address instead of the listening ones: a forwarded port, a container\'s mapped port, a proxy (repeatable)', multiaddrList, [])
    .option('--announce-private', 'announce loopback/private addresses even to a swarm that cannot dial them')
    .option('--max-sessions <n>', 'concurrent sessions at most', int(1), 16)
    .option('--max-sessions-per-peer <n>', 'sessions one remote peer id may hold (default: a quarter of --max-sessions, at most 4)', int(1))
    .option('--max-sessions-per-ip <n>', 'sessions one remote IP address may hold (default: half of --max-sessions, at most 8)', int(1))
    .option('--cache-mb <n>', 'KV-cache memory budget, MiB', int(1), 1024)
    .option('--cache-mb-per-peer <n>', 'KV cache one remote peer id may reserve, MiB (default: a quarter of --cache-mb)', int(1))
    .option('--cache-mb-per-ip <n>', 'KV cache one remote IP address may reserve, MiB (default: half of --cache-mb)', int(1))
    .option('--max-streams-per-peer <n>', 'session streams one remote peer id may hold open; more are reset unread (default: its session share + 4)', int(1))
    .option('--max-opens-per-peer <n>', 'session opens per second one remote peer id may make (bursts of twice that); more are refused busy', int(1), 20)
    .option('--max-messages-per-peer <n>', 'messages per second one remote peer id may send over all its sessions (bursts of twice that); beyond it the peer reads slower', int(1), 1000)
    .option('--protocol-ban-ms <n>', 'disconnect a remote that breaks the wire protocol and refuse it (peer id, and address for direct connections) this long; 0 = never', int(0), 60_000)
    .option('--first-step-timeout-ms <n>', 'close a session that sends no step this long after opening it', int(100), 5_000)
    .option('--idle-timeout-ms <n>', 'close a session that sends nothing for this long', int(100), 60_000)
    .option('--active-window-ms <n>', 'a session with a message this recent is in active use: never evicted to make room', int(0), 2_000)
    .option('--identity <file>', 'private key file (created on first run) so the peer id survives restarts')
    .option('--model-id <id>', 'announce under this model id (default: derived from config.json)')
    .addOption(new Option('--quantize <format>', 'quantize weights on load').choices(['int8', 'int4']))
    .option('--threads <n>', 'compute threads', int(1))
    .option('--network-mbps <n>', "this link's speed in Mbit/s, for the announced throughput (default: measured against the bootstrap peer)", num(0.001))
    .option('--rebalance-interval-ms <n>', 'mean time between checks whether to move to other blocks (±50%; peers with --blocks never move)', int(100), 60_000)
    .option('--no-direct', 'keep every session on its libp2p stream (no direct TCP data path for session steps)')
    .addOption(new Option('--direct-port <port>', 'TCP port of the direct data path (default: any free port); with --announce the direct path is on only when this is given (forward or publish it too)').argParser(int(0, 65535)))
    .addOption(new Option('--inject-fault <kind>', 'tests and demos only: misbehave on purpose').choices(['corrupt', 'slow', 'drop']))
    .option('--fault-rate <r>', 'share of steps --inject-fault corrupt|slow hits, evenly spaced (e.g. 0.2: every 5th step)', num(Number.MIN_VALUE, 1), 1)
    .addOption(new Option('--metrics-port <port>', 'serve Prometheus metrics (/metrics) and a health check (/healthz: 200 while serving) on this port (0 = any free port)').argParser(int(0, 65535)).env('STRATA_METRICS_PORT'))
    .option('--metrics-host <host>', 'address for the metrics endpoint', '127.0.0.1')
    .option('--allow-unknown-config', ALLOW_UNKNOWN_CONFIG_HELP)
    .option('--json', 'print one JSON event per line')
    .action(async (o) => {
      if (o.blocks !== undefined && o.numBlocks !== undefined) throw new Error('give at most one of --blocks and --num-blocks')
      if (o.faultRate !== 1 && o.injectFault !== 'corrupt' && o.injectFault !== 'slow') throw new Error('--fault-rate needs --inject-fault corrupt or slow')
      const print = (e: Record<string, unknown>): void => {
        if (o.json === true) process.stdout.write(JSON.stringify(e) + '\n')
        else process.stdout.write(`${new Date().toISOString()} ${String(e.event)} ${JSON.stringify({ ...e, event: undefined })}\n`)
      }
      warnUnknownConfig(o.model, o.allowUnknownConfig)
      const server = await PeerServer.start({
        modelDir: o.model,
        allowUnknownConfig: o.allowUnknownConfig === true,
        modelId: o.modelId,
        blocks: o.blocks,
        numBlocks: o.numBlocks,
        maxMemoryBytes: o.maxMemoryMb !== undefined ? o.maxMemoryMb * 1024 * 1024 : undefined,
        listen: o.listen.length > 0 ? o.listen : undefined,
        bootstrap: o.bootstrap,
        relay: o.relay,
        announcePrivate: o.announcePrivate === true,
        announce: o.announce.length > 0 ? o.announce : undefined,
        maxSessions: o.maxSessions,
        maxSessionsPerPeer: o.maxSessionsPerPeer,
        maxSessionsPerIp: o.maxSessionsPerIp,
        cacheBytes: o.cacheMb * MIB,
        cacheBytesPerPeer: o.cacheMbPerPeer !== undefined ? o.cacheMbPerPeer * MIB : undefined,
        cacheBytesPerIp: o.cacheMbPerIp !== undefined ? o.cacheMbPerIp * MIB : undefined,
        maxStreamsPerPeer: o.maxStreamsPerPeer,
        maxOpensPerPeerPerSecond: o.maxOpensPerPeer,
        maxMessagesPerPeerPerSecond: o.maxMessagesPerPeer,
        protocolBanMs: o.protocolBanMs,
        firstStepTimeoutMs: o.firstStepTimeoutMs,
        idleTimeoutMs: o.idleTimeoutMs,
        activeWindowMs: o.activeWindowMs,
        identityFile: o.identity,
        weightFormat: o.quantize,
        threads: o.threads,
        networkMbps: o.networkMbps,
        rebalanceIntervalMs: o.rebalanceIntervalMs,
        direct: o.direct !== false,
        directPort: o.directPort,
        fault: o.injectFault,
        faultRate: o.faultRate,
        metricsPort: o.metricsPort,
        metricsHost: o.metricsHost
      })
      server.on('event', print)
      if (o.injectFault !== undefined) process.stderr.write(`WARNING: fault injection "${o.injectFault}"${o.faultRate !== 1 ? ` at rate ${o.faultRate}` : ''} is on: this peer misbehaves on purpose\n`)
      print({ event: 'ready', peerId: server.peerId, multiaddrs: server.multiaddrs, blocks: server.span, ...(server.directPort !== null ? { directPort: server.directPort } : {}), modelId: server.modelId, throughput: server.throughput, computeThroughput: server.measured.compute, networkThroughput: server.measured.network, ...(server.metricsPort !== null ? { metricsUrl: `http://${o.metricsHost}:${server.metricsPort}/metrics`, healthUrl: `http://${o.metricsHost}:${server.metricsPort}/healthz` } : {}) })
      let stopping = false
      const shutdown = (signal: string): void => {
        if (stopping) return
        stopping = true
        process.stderr.write(`${signal}: draining and leaving the swarm…\n`)
        server.stop().then(() => process.exit(0), (err: Error) => { process.stderr.write(`strata: error while stopping: ${err.message}\n`); process.exit(1) })
      }
      process.on('SIGINT', () => { shutdown('SIGINT') })
      process.on('SIGTERM', () => { shutdown('SIGTERM') })
    })
}
