import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { MultiaddrConnection } from '@libp2p/interface'
import { Offenders } from '../../src/peer/offenders.ts'

describe('peer offenders: remotes shut out for breaking the wire protocol', function () {
  it('bans by peer id and address for banMs, then forgets', function () {
    const o = new Offenders(1000)
    o.ban({ peer: 'p', ip: '10.0.0.7' }, 0)
    assert.ok(o.isPeerBanned('p', 999))
    assert.ok(o.isIpBanned('10.0.0.7', 999))
    assert.ok(!o.isPeerBanned('q', 999))
    assert.ok(!o.isIpBanned('10.0.0.8', 999))
    assert.ok(!o.isPeerBanned('p', 1000))
    assert.ok(!o.isIpBanned('10.0.0.7', 1000))
  })

  it('never bans the shared local addresses or a relayed remote by address, and nobody with banMs 0', function () {
    const o = new Offenders(1000)
    o.ban({ peer: 'a', ip: '127.0.0.1' }, 0)
    o.ban({ peer: 'b', ip: '0:0:0:0::/64' }, 0)
    o.ban({ peer: 'c', ip: '' }, 0)
    assert.ok(!o.isIpBanned('127.0.0.1', 1) && !o.isIpBanned('0:0:0:0::/64', 1) && !o.isIpBanned('', 1))
    assert.ok(o.isPeerBanned('a', 1) && o.isPeerBanned('b', 1) && o.isPeerBanned('c', 1))
    // other loopback addresses are hosts of their own (and the flood test's hostile nodes)
    o.ban({ peer: 'd', ip: '127.0.1.9' }, 0)
    assert.ok(o.isIpBanned('127.0.1.9', 1))
    const off = new Offenders(0)
    off.ban({ peer: 'p', ip: '10.0.0.7' }, 0)
    assert.ok(!off.isPeerBanned('p', 0) && !off.isIpBanned('10.0.0.7', 0))
  })

  it('stays bounded however many offenders there are', function () {
    const o = new Offenders(1000, 10)
    for (let i = 0; i < 1000; i++) o.ban({ peer: `p${i}`, ip: `10.0.${i >> 8}.${i & 255}` }, 0)
    assert.ok(o.isPeerBanned('p999', 1) && !o.isPeerBanned('p0', 1))
    assert.ok(o.isIpBanned('10.0.3.231', 1) && !o.isIpBanned('10.0.0.0', 1))
  })

  it('as a connection gater: refuses a banned address before the handshake, a banned id after it', async function () {
    const o = new Offenders(60_000)
    const key = await generateKeyPair('Ed25519')
    const id = peerIdFromPrivateKey(key)
    o.ban({ peer: id.toString(), ip: '192.0.2.5' }, Date.now())
    const gater = o.gater()
    const conn = (addr: string): MultiaddrConnection => ({ remoteAddr: multiaddr(addr) }) as unknown as MultiaddrConnection
    assert.equal(await gater.denyInboundConnection?.(conn('/ip4/192.0.2.5/tcp/4001')), true)
    assert.equal(await gater.denyInboundConnection?.(conn('/ip4/192.0.2.6/tcp/4001')), false)
    assert.equal(await gater.denyInboundEncryptedConnection?.(id, conn('/ip4/192.0.2.6/tcp/4001')), true)
  })
})
