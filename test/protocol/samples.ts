// Valid messages of every kind, shared by the message and fuzz tests.
import type { Message } from '../../src/protocol/index.ts'

function hidden (dtype: 'f32' | 'f16', shape: [number, number, number]): { dtype: 'f32' | 'f16', shape: [number, number, number], data: Float32Array } {
  const data = new Float32Array(shape[0] * shape[1] * shape[2])
  // values exactly representable in f16, so f16 round trips compare equal too
  for (let i = 0; i < data.length; i++) data[i] = ((i * 37) % 23 - 11) / 8
  return { dtype, shape, data }
}

export function sampleMessages (): Message[] {
  return [
    { kind: 'open', sessionId: 'sess-1', modelId: 'tinyllama-1.1b', start: 0, end: 11, maxLength: 2048, wireDtype: 'f16' },
    { kind: 'open', sessionId: 'ü🙂', modelId: 'm', start: 7, end: 8, maxLength: 1, wireDtype: 'f32' },
    { kind: 'opened', sessionId: 'sess-1', start: 0, end: 11, maxLength: 2048 },
    { kind: 'step', stepId: 0, position: 0, hidden: hidden('f32', [1, 3, 4]) },
    { kind: 'step', stepId: 4294967295, position: 17, hidden: hidden('f16', [2, 1, 5]) },
    { kind: 'result', stepId: 0, position: 3, hidden: hidden('f32', [1, 3, 4]) },
    { kind: 'result', stepId: 5, position: 18, hidden: hidden('f16', [2, 1, 5]) },
    { kind: 'truncate', length: 0 },
    { kind: 'truncated', length: 12 },
    { kind: 'close' },
    { kind: 'error', code: 'desync', message: 'expected position 4, got 5' },
    { kind: 'error', code: 'busy', message: '' },
    { kind: 'info_request' },
    { kind: 'info', json: '{"peerId":"12D3KooWabc","span":[0,11],"throughput":12.5,"name":"ü"}' },
    {
      kind: 'push_route',
      from: { peerId: '12D3KooWprev', token: 'tok-0123456789abcdef' },
      to: { peerId: '12D3KooWabc', multiaddrs: ['/ip4/127.0.0.1/tcp/4001', '/ip6/::1/tcp/4001'], sessionId: 'sess-2', token: 'tok-fedcba9876543210' }
    },
    { kind: 'push_route', to: { peerId: '12D3KooWabc', multiaddrs: [], sessionId: 's', token: 'x'.repeat(16) } },
    { kind: 'push_route' },
    { kind: 'push_routed' },
    { kind: 'push', sessionId: 'sess-2', token: 'tok-fedcba9876543210', stepId: 9, position: 3, hidden: hidden('f16', [1, 1, 4]) },
    { kind: 'push', sessionId: 'ü', token: 'y'.repeat(128), stepId: 0, position: 0, hidden: hidden('f32', [1, 3, 4]) },
    { kind: 'pushed', stepId: 7, position: 8 },
    { kind: 'error', code: 'forbidden', message: 'no session accepts pushes with this token from you' },
    { kind: 'direct_request', sessionId: 'sess-1', key: Buffer.alloc(32, 7).toString('base64') },
    { kind: 'direct_offer', port: 40123, token: Buffer.alloc(16, 9).toString('base64') }
  ]
}
