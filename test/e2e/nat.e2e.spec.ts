// Issue 11: peers behind NAT. Real processes in Linux network namespaces: two homes, each behind
// its own masquerading router, serve the model through relays in the "internet" namespace: the
// first bootstrap node, and a second public node that turned relaying on because AutoNAT v2
// confirmed its address (a third, firewalled, public node is refused). A public client generates
// through the homes relayed, then direct after DCUtR, and a client in a third home generates
// through them over the relays. The first relay then restarts: the home behind it reserves a slot
// again and serves again. Tokens must equal local generation every time.
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { multiaddr } from '@multiformats/multiaddr'
import { e2eShape, localTokens } from '../helpers/local.ts'
import { tempDir, tinyModel } from '../helpers/models.ts'
import { GenerateProcess, startPeer, startRelay, stopPeers, type PeerProcess, type PeerEventLine } from '../helpers/swarm.ts'
import { NatTopology, PUBLIC_HOST, PUBLIC_HOST_2, netnsUnavailable } from '../helpers/netns.ts'
import { addressScope, isRelayed } from '../../src/routing/reachability.ts'

/** A TCP server inside `ns` answering every connection with the address it came from. */
async function probeServer (ns: string, host: string, port: number): Promise<ChildProcess> {
  const code = `require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(${port}, '${host}', () => console.log('listening'))`
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] })
  await new Promise((resolve, reject) => { proc.stdout.once('data', resolve); proc.once('exit', reject) })
  return proc
}

/** Connects from inside `ns`: the address the server saw, or null when the connection failed. */
function probeConnect (ns: string, host: string, port: number): string | null {
  const code = `const s = require('net').connect(${port}, '${host}'); s.setTimeout(2000, () => process.exit(2)); s.on('data', (d) => { process.stdout.write(d); process.exit(0) }); s.on('error', () => process.exit(1))`
  const out = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { encoding: 'utf8', timeout: 15_000 })
  return out.status === 0 ? out.stdout.trim() : null
}

interface Run { done: PeerEventLine, wallToFirstTokenMs: number }

async function generate (dir: string, bootstrap: string, prompt: number[], n: number, ns: string, extra: string[] = []): Promise<Run> {
  const started = performance.now()
  const g = new GenerateProcess(['--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(n), '--ignore-eos', '--bootstrap', bootstrap, ...extra], { netns: ns })
  try {
    await g.waitFor((e) => e.event === 'token', 120_000)
    const wallToFirstTokenMs = performance.now() - started
    const done = await g.waitFor((e) => e.event === 'done', 120_000)
    assert.equal(await g.exited, 0, g.errors)
    return { done, wallToFirstTokenMs }
  } finally {
    g.kill()
  }
}

describe('peers behind NAT serve through a relay (network namespaces)', function () {
  this.timeout(300_000)
  const skip = netnsUnavailable()
  const dir = tinyModel('e2e', e2eShape)
  const prompt = [1, 20, 30, 40, 50]
  const n = 48
  let expected: number[]
  let net: NatTopology | null = null
  const procs: PeerProcess[] = []
  let bootstrap = ''
  const relayKey = `${tempDir('nat-relay-')}/identity.key`
  let relay2: PeerProcess
  let firewalled: PeerProcess
  let relay2Ms = 0
  const joinMs: number[] = []

  before(async function () {
    if (skip !== null) {
      console.log(`      skipping the NAT tests: ${skip}`)
      this.skip()
    }
    expected = await localTokens(dir, prompt, n)
    net = NatTopology.create(3)
    const relay = await startRelay(['--listen', `/ip4/${PUBLIC_HOST}/tcp/4001`, '--identity', relayKey], 'relay', 120_000, { netns: net.pub })
    procs.push(relay)
    bootstrap = relay.multiaddrs[0]
    // a second public node joins: it relays once AutoNAT (the first relay dialling it back) confirms its address
    const t2 = performance.now()
    relay2 = await startRelay(['--listen', `/ip4/${PUBLIC_HOST_2}/tcp/4002`, '--bootstrap', bootstrap], 'relay2', 120_000, { netns: net.pub })
    procs.push(relay2)
    relay2Ms = performance.now() - t2
    // a public node nobody can dial (new inbound connections dropped): AutoNAT must not confirm
    // it, and it falls back to a relay slot
    net.blockInbound(net.pub, 4003)
    const fw = startRelay(['--listen', `/ip4/${PUBLIC_HOST_2}/tcp/4003`, '--bootstrap', bootstrap, '--reachable-timeout-ms', '10000'], 'firewalled', 120_000, { netns: net.pub })
    // home 1 reserves on the first relay, home 2 on the AutoNAT-confirmed one
    const homes: Array<[number, number, string]> = [[0, 2, bootstrap], [2, 4, relay2.multiaddrs[0]]]
    const peers = Promise.all(homes.map(async ([a, b, via], i) => {
      const t0 = performance.now()
      const p = await startPeer(dir, ['--blocks', `${a}:${b}`, '--bootstrap', via], `home${i + 1}[${a},${b})`, 180_000, { netns: net!.homes[i] })
      joinMs.push(performance.now() - t0)
      return p
    }))
    const settled = await Promise.allSettled([fw, peers])
    for (const r of settled) if (r.status === 'fulfilled') procs.push(...[r.value].flat())
    for (const r of settled) if (r.status === 'rejected') throw r.reason
    firewalled = procs.find((p) => p.label === 'firewalled')!
  })

  after(async function () {
    await stopPeers(procs)
    net?.destroy()
  })

  it('the routers NAT: homes reach the internet from the router address, nothing reaches a home', async function () {
    const server = await probeServer(net!.pub, PUBLIC_HOST, 7001)
    try {
      assert.equal(probeConnect(net!.homes[0], PUBLIC_HOST, 7001), net!.routerAddress(1), 'the public side sees the router, not the home')
    } finally {
      server.kill()
    }
    const home = await probeServer(net!.homes[0], '0.0.0.0', 7002)
    try {
      for (const target of [net!.homeAddress(1), net!.routerAddress(1)]) {
        assert.equal(probeConnect(net!.pub, target, 7002), null, `a connection from the internet to ${target}:7002 must fail`)
      }
    } finally {
      home.kill()
    }
  })

  it('AutoNAT v2 confirms a public node others can dial (which then relays) and not a firewalled one (which uses a relay)', function () {
    const ready2 = relay2.events[0]
    assert.deepEqual(ready2.multiaddrs, [`/ip4/${PUBLIC_HOST_2}/tcp/4002/p2p/${relay2.peerId}`], 'the confirmed address, and only it')
    assert.equal(ready2.relay, true, 'relaying turned on by the confirmation')
    const readyFw = firewalled.events[0]
    assert.ok(readyFw.multiaddrs.length > 0)
    for (const a of readyFw.multiaddrs as string[]) {
      assert.ok(a.startsWith(`${bootstrap}/p2p-circuit`), `${a}: an address nobody could dial back is not announced, the relay slot is`)
    }
    assert.equal(readyFw.relay, false)
    assert.match(firewalled.stderr, /AutoNAT has confirmed no public address/)
    console.log(`      second public node: spawn to confirmed and relaying in ${(relay2Ms / 1000).toFixed(1)} s`)
  })

  it('peers behind NAT announce only their relay address: no private or loopback address leaves the home', function () {
    const relayOf = [bootstrap, relay2.multiaddrs[0]]
    for (const [i, p] of procs.filter((q) => q.label.startsWith('home')).entries()) {
      assert.ok(p.multiaddrs.length > 0, `${p.label} announces an address`)
      for (const a of p.multiaddrs) {
        const ma = multiaddr(a)
        assert.ok(isRelayed(ma), `${p.label} announces ${a}: not a relay address`)
        assert.equal(addressScope(ma), 'public', `${p.label} announces ${a}`)
        assert.ok(a.startsWith(`${relayOf[i]}/p2p-circuit`), `${p.label} announces ${a}: not through its relay ${relayOf[i]}`)
      }
    }
  })

  let relayed: Run
  it('a public client generates through the NATed chain over the relay, tokens identical to local', async function () {
    relayed = await generate(dir, bootstrap, prompt, n, net!.pub, ['--no-hole-punch'])
    assert.deepEqual(relayed.done.tokens, expected)
    assert.deepEqual(relayed.done.paths.map((p: { path: string }) => p.path), ['relayed', 'relayed'])
  })

  it('with DCUtR the connections are upgraded to direct ones, tokens identical to local', async function () {
    const direct = await generate(dir, bootstrap, prompt, n, net!.pub)
    assert.deepEqual(direct.done.tokens, expected)
    assert.deepEqual(direct.done.paths.map((p: { path: string }) => p.path), ['direct', 'direct'])
    const homeClient = await generate(dir, bootstrap, prompt, n, net!.homes[2])
    assert.deepEqual(homeClient.done.tokens, expected)
    const fmt = (r: Run): string => `${r.done.tokensPerSecond.toFixed(1)} tok/s, first token ${r.wallToFirstTokenMs.toFixed(0)} ms after spawn (${r.done.timeToFirstTokenMs.toFixed(0)} ms after connecting)`
    console.log(`      peers joined through the relay in ${joinMs.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ')} (spawn to ready)`)
    console.log(`      public client, relayed: ${fmt(relayed)}`)
    console.log(`      public client, direct:  ${fmt(direct)}`)
    console.log(`      client in a third home, NAT to NAT (${homeClient.done.paths.map((p: { path: string }) => p.path).join(', ')}): ${fmt(homeClient)}`)
  })

  it('when the relay restarts, the home behind it reserves a slot again and serves again', async function () {
    const relay = procs[0]
    const home1 = procs.find((p) => p.label.startsWith('home1'))!
    relay.kill()
    await relay.exited
    const lost = await home1.waitFor((e) => e.event === 'addresses' && e.multiaddrs.length === 0, 30_000)
    const t0 = performance.now()
    const again = await startRelay(['--listen', `/ip4/${PUBLIC_HOST}/tcp/4001`, '--identity', relayKey], 'relay (restarted)', 60_000, { netns: net!.pub })
    procs.push(again)
    assert.equal(again.multiaddrs[0], bootstrap, 'same identity, same address')
    const back = await home1.waitFor((e) => e.event === 'addresses' && e.multiaddrs.length > 0 && home1.events.indexOf(e) > home1.events.indexOf(lost), 60_000)
    const reservedMs = performance.now() - t0
    for (const a of back.multiaddrs as string[]) assert.ok(a.startsWith(`${bootstrap}/p2p-circuit`), a)
    const run = await generate(dir, bootstrap, prompt, n, net!.pub, ['--no-hole-punch'])
    assert.deepEqual(run.done.tokens, expected)
    console.log(`      relay restarted: home 1 had a slot again ${(reservedMs / 1000).toFixed(1)} s after the relay was spawned again; a client then generated at ${run.done.tokensPerSecond.toFixed(1)} tok/s`)
  })
})
