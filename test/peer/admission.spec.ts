import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { Admission, defaultShares, reservationTokens, type AdmissionLimits } from '../../src/peer/admission.ts'
import { remoteAddressOf } from '../../src/peer/session-handler.ts'

const roomy: AdmissionLimits = {
  maxSessions: 4, capacityBytes: 1000, perPeerSessions: 4, perIpSessions: 4, perPeerBytes: 1000, perIpBytes: 1000, activeWindowMs: 100
}

function ok (v: ReturnType<Admission['open']>): string[] {
  assert.ok(v.ok, v.ok ? '' : `${v.reason}: ${v.message}`)
  return v.evicted
}

function refused (v: ReturnType<Admission['open']>): string {
  assert.ok(!v.ok, 'refused')
  return v.reason
}

describe('admission: fair share per remote', function () {
  it('defaults are a small number or a fraction, whichever is smaller', function () {
    assert.deepEqual(defaultShares(16, 1024), { perPeerSessions: 4, perIpSessions: 8, perPeerBytes: 256, perIpBytes: 512 })
    assert.deepEqual(defaultShares(64, 1024), { perPeerSessions: 4, perIpSessions: 8, perPeerBytes: 256, perIpBytes: 512 })
    assert.deepEqual(defaultShares(4, 100), { perPeerSessions: 1, perIpSessions: 2, perPeerBytes: 25, perIpBytes: 50 })
    assert.deepEqual(defaultShares(1, 100).perPeerSessions, 1)
  })

  it('caps sessions per peer id and per IP address, and bytes for both', function () {
    const a = new Admission({ ...roomy, maxSessions: 16, perPeerSessions: 2, perIpSessions: 3, perPeerBytes: 300, perIpBytes: 400 })
    ok(a.open('p1/a', { peer: 'p1', ip: '10.0.0.1' }, 100, 0))
    ok(a.open('p1/b', { peer: 'p1', ip: '10.0.0.1' }, 100, 0))
    assert.equal(refused(a.open('p1/c', { peer: 'p1', ip: '10.0.0.1' }, 100, 0)), 'peer_sessions')
    ok(a.open('p2/a', { peer: 'p2', ip: '10.0.0.1' }, 100, 0))
    assert.equal(refused(a.open('p3/a', { peer: 'p3', ip: '10.0.0.1' }, 1, 0)), 'ip_sessions')
    // another address is not affected by the first one's share
    ok(a.open('p4/a', { peer: 'p4', ip: '10.0.0.2' }, 300, 0))
    assert.equal(refused(a.open('p4/b', { peer: 'p4', ip: '10.0.0.2' }, 1, 0)), 'peer_cache')
    assert.equal(refused(a.open('p5/a', { peer: 'p5', ip: '10.0.0.2' }, 101, 0)), 'ip_cache')
    assert.equal(a.sessions, 4)
    assert.equal(a.usedBytes, 600)
    // a refusal reserves nothing; a release frees the share
    a.release('p1/a')
    ok(a.open('p1/c', { peer: 'p1', ip: '10.0.0.1' }, 100, 0))
  })

  it('an address is an IPv4 address, an IPv6 /64, or nothing for relayed connections', function () {
    assert.equal(remoteAddressOf(multiaddr('/ip4/203.0.113.7/tcp/4001')), '203.0.113.7')
    assert.equal(remoteAddressOf(multiaddr('/ip6/2001:db8:0:1:aaaa::1/tcp/4001')), '2001:db8:0:1::/64')
    assert.equal(remoteAddressOf(multiaddr('/ip6/2001:db8:0:1:bbbb:cccc:dddd:2/tcp/4001')), '2001:db8:0:1::/64')
    assert.equal(remoteAddressOf(multiaddr('/ip6/::1/tcp/4001')), '0:0:0:0::/64')
    assert.equal(remoteAddressOf(multiaddr('/ip4/198.51.100.1/tcp/4001/p2p/12D3KooWRNXWg4UYGBzJHz8nB3HkvBir5hfQa4Qn651eN9S4YNHm/p2p-circuit')), '')
  })

  it('without a known address only the peer id counts', function () {
    const a = new Admission({ ...roomy, perIpSessions: 1 })
    ok(a.open('p1/a', { peer: 'p1', ip: '' }, 10, 0))
    ok(a.open('p2/a', { peer: 'p2', ip: '' }, 10, 0))
  })
})

describe('admission: eviction order under pressure', function () {
  it('evicts the idlest session of the address, then the peer id, holding the most', function () {
    const a = new Admission({ ...roomy, maxSessions: 6 })
    // address X holds 3 (peer x1: 2, peer x2: 1); address Y holds 2; address Z holds 1
    ok(a.open('x1/old', { peer: 'x1', ip: 'X' }, 10, 0))
    ok(a.open('x2/older', { peer: 'x2', ip: 'X' }, 10, -50))
    ok(a.open('x1/new', { peer: 'x1', ip: 'X' }, 10, 20))
    ok(a.open('y1/a', { peer: 'y1', ip: 'Y' }, 10, -500))
    ok(a.open('y1/b', { peer: 'y1', ip: 'Y' }, 10, -500))
    ok(a.open('z1/a', { peer: 'z1', ip: 'Z' }, 10, -900))
    const now = 1000
    assert.deepEqual(a.evictionOrder({ peer: 'n', ip: 'N' }, now).map((e) => e.key), ['x1/old', 'x1/new', 'x2/older', 'y1/a', 'y1/b', 'z1/a'])
    assert.deepEqual(ok(a.open('n/1', { peer: 'n', ip: 'N' }, 10, now)), ['x1/old'])
    // X and Y now hold 2 each; y1 holds both of Y's, more than any peer id of X
    assert.deepEqual(ok(a.open('n/2', { peer: 'n', ip: 'N' }, 10, now)), ['y1/a'])
    // X holds 2, Y 1, N 2: X goes first, and of X's peers (one each) the idlest
    assert.deepEqual(ok(a.open('n/3', { peer: 'n', ip: 'N' }, 10, now)), ['x2/older'])
    assert.equal(a.sessions, 6)
  })

  it('never evicts a session in active use: a step in flight, or a message within the window', function () {
    const a = new Admission({ ...roomy, maxSessions: 2, activeWindowMs: 100 })
    ok(a.open('h/busy', { peer: 'h', ip: 'H' }, 10, 0))
    ok(a.open('h/recent', { peer: 'h', ip: 'H' }, 10, 0))
    a.stepStarted('h/busy', 0)
    a.touch('h/recent', 950)
    assert.equal(refused(a.open('n/1', { peer: 'n', ip: 'N' }, 10, 1000)), 'slots_full')
    a.stepEnded('h/busy', 500)
    assert.deepEqual(ok(a.open('n/1', { peer: 'n', ip: 'N' }, 10, 1000)), ['h/busy'], 'idle since 500')
    assert.equal(refused(a.open('n/2', { peer: 'n', ip: 'N' }, 10, 1000)), 'slots_full', 'h/recent is still within its window')
  })

  it('does not evict the newcomer\'s own sessions, and evicts nobody when that would not make room', function () {
    const a = new Admission({ ...roomy, maxSessions: 3, capacityBytes: 100 })
    ok(a.open('n/1', { peer: 'n', ip: 'N' }, 10, 0))
    ok(a.open('i/1', { peer: 'i', ip: 'I' }, 10, 0))
    ok(a.open('b/1', { peer: 'b', ip: 'B' }, 10, 0))
    a.stepStarted('b/1', 0)
    // 81 bytes: evicting i/1 alone (the only evictable one) frees 10 of the 81 - 70 missing
    assert.equal(refused(a.open('n/2', { peer: 'n', ip: 'N' }, 81, 1000)), 'cache_full')
    assert.equal(a.sessions, 3, 'nobody was evicted for nothing')
    assert.deepEqual(ok(a.open('n/2', { peer: 'n', ip: 'N' }, 80, 1000)), ['i/1'])
  })

  it('frees budget by evicting as many idle sessions as needed', function () {
    const a = new Admission({ ...roomy, maxSessions: 10, capacityBytes: 100, perPeerSessions: 10, perIpSessions: 10 })
    for (let i = 0; i < 5; i++) ok(a.open(`h/${i}`, { peer: 'h', ip: 'H' }, 20, i))
    assert.deepEqual(ok(a.open('n/1', { peer: 'n', ip: 'N' }, 50, 1000)), ['h/0', 'h/1', 'h/2'])
    assert.equal(a.usedBytes, 90)
  })
})

describe('admission: reservations that grow', function () {
  it('reserves what a session holds plus a margin, in whole chunks, at most maxLength', function () {
    assert.equal(reservationTokens(0, 2048, 128), 128)
    assert.equal(reservationTokens(5, 2048, 128), 256)
    assert.equal(reservationTokens(127, 2048, 128), 256)
    assert.equal(reservationTokens(128, 2048, 128), 256)
    assert.equal(reservationTokens(129, 2048, 128), 384)
    assert.equal(reservationTokens(2000, 2048, 128), 2048)
    assert.equal(reservationTokens(3, 16, 128), 16)
    assert.equal(reservationTokens(10, 2048, 128, 0), 128)
  })

  it('grows in place, refuses past the budget or the share without losing what it holds', function () {
    const a = new Admission({ ...roomy, maxSessions: 4, capacityBytes: 300, perPeerBytes: 250 })
    ok(a.open('c/1', { peer: 'c', ip: 'C' }, 100, 0))
    assert.deepEqual(ok(a.grow('c/1', 50, 1)), [], 'shrinking is a no-op')
    assert.equal(a.reserved('c/1'), 100)
    ok(a.grow('c/1', 200, 1))
    assert.equal(a.usedBytes, 200)
    assert.equal(refused(a.grow('c/1', 260, 2)), 'peer_cache')
    assert.equal(a.reserved('c/1'), 200)
    ok(a.open('d/1', { peer: 'd', ip: 'D' }, 100, 2))
    a.stepStarted('d/1', 2)
    assert.equal(refused(a.grow('c/1', 250, 3)), 'cache_full', 'd/1 is in active use')
    a.stepEnded('d/1', 3)
    assert.equal(refused(a.grow('c/1', 250, 50)), 'cache_full', 'd/1 is still within its active window')
    assert.deepEqual(ok(a.grow('c/1', 250, 1000)), ['d/1'], 'an idle session of another remote makes room for a session in use')
    assert.equal(a.usedBytes, 250)
    a.release('c/1')
    assert.equal(a.usedBytes, 0)
    assert.equal(a.sessions, 0)
  })

  it('uses the last bytes of a share without the margin', function () {
    const a = new Admission({ ...roomy, capacityBytes: 1000, perPeerBytes: 300 })
    ok(a.open('c/1', { peer: 'c', ip: 'C' }, 100, 0))
    ok(a.growTo('c/1', 250, 400, 1))
    assert.equal(a.reserved('c/1'), 250, 'the margin did not fit, the need did')
    ok(a.growTo('c/1', 260, 290, 2))
    assert.equal(a.reserved('c/1'), 290, 'the margin fits: taken')
    assert.equal(refused(a.growTo('c/1', 301, 400, 3)), 'peer_cache')
    assert.equal(a.reserved('c/1'), 290)
    a.release('c/1')
    assert.equal(a.sessions, 0)
  })
})
