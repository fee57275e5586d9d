import type { Command } from 'commander'
import { Option } from 'commander'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createSwarmNode, isRelaying, loadOrCreateIdentity, reachabilityOf, relayLimits, waitForAnnounceableAddress, waitForRelaying, withTimeout } from '../routing/index.ts'
import { collect } from './flags.ts'

export function registerRelay (program: Command): void {
  program.command('relay')
    .description('run a bootstrap node that serves no blocks: it holds DHT records and relays for peers behind NAT')
    .option('--listen <multiaddr>', 'listen address (repeatable; default every interface, port 0)', collect, [])
    .option('--bootstrap <multiaddr>', 'other bootstrap peer (repeatable)', collect, [])
    .addOption(new Option('--relay <mode>', 'relay for peers behind NAT: auto = once AutoNAT confirms a public address of this node (the first node of a swarm: when it binds a public interface)').choices(['auto', 'on', 'off']).default('auto'))
    .option('--reachable-timeout-ms <ms>', 'in a public swarm, how long to wait for a confirmed address (and, with --relay auto, for relaying) before reporting ready anyway', (v) => Number(v), 30_000)
    .option('--announce-private', 'announce loopback/private addresses even to a swarm that cannot dial them')
    .option('--identity <file>', 'private key file (created on first run) so the peer id survives restarts')
    .option('--json', 'print one JSON event per line')
    .action(async (o) => {
      const privateKey = o.identity !== undefined ? await loadOrCreateIdentity(o.identity) : await generateKeyPair('Ed25519')
      const opts = { listen: o.listen.length > 0 ? o.listen : ['/ip4/0.0.0.0/tcp/0'], bootstrap: o.bootstrap, relay: o.relay, announcePrivate: o.announcePrivate === true, privateKey }
      const reach = reachabilityOf(opts)
      const node = await createSwarmNode(opts)
      const peerId = node.peerId.toString()
      if (reach.scope === 'public' && !reach.selfConfirmed) {
        // joining a public swarm: AutoNAT (or a relay slot, behind NAT) gives the address to hand out
        await withTimeout(o.reachableTimeoutMs, undefined, async (signal) => {
          await waitForAnnounceableAddress(node, signal)
          if (reach.relay === 'when-public' && reach.publicSelf) await waitForRelaying(node, signal)
        }).catch(() => {
          process.stderr.write(`warning: after ${o.reachableTimeoutMs} ms, AutoNAT has confirmed ${node.getMultiaddrs().length === 0 ? 'no address' : 'no public address'} of this node${reach.relay === 'when-public' ? ': not relaying' : ''}\n`)
        })
      }
      const relaying = isRelaying(node)
      // multiaddrs: what is announced (addresses the swarm can dial); operators hand one out,
      // with /p2p/<peerId>, as the bootstrap address
      const ready = {
        event: 'ready',
        peerId,
        multiaddrs: node.getMultiaddrs().map(String),
        listen: opts.listen,
        relay: relaying,
        ...(relaying ? { relayLimits: { dataBytes: Number(relayLimits.dataBytes), durationMs: relayLimits.durationMs, maxReservations: relayLimits.maxReservations } } : {})
      }
      process.stdout.write(o.json === true ? JSON.stringify(ready) + '\n' : `relay node ${peerId} ready${relaying ? ' (relaying)' : ''}\n`)
      const shutdown = (): void => { Promise.resolve(node.stop()).then(() => process.exit(0), () => process.exit(1)) }
      process.once('SIGINT', shutdown)
      process.once('SIGTERM', shutdown)
    })
}
