// Qwen2, Qwen3 and Mistral blocks through real peer processes: written by `strata make-model
// --arch`, split over two peers, exactly the Float64 reference's greedy tokens. Also: a client
// refuses a chain that mixes architectures, and --allow-unknown-config.
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { startSwarm, startPeer, stopPeers, type PeerProcess } from '../helpers/swarm.ts'
import { tempDir } from '../helpers/models.ts'
import { ReferenceLlama } from '../shards/reference.ts'
import { Swarm } from '../../src/client/swarm.ts'

const prompt = [1, 30, 31, 32, 33, 34]
const n = 8

async function makeModelCli (arch: string, extra: string[] = []): Promise<string> {
  const dir = tempDir(`${arch}-`)
  const r = await runCli(['make-model', '--out', dir, '--arch', arch, '--layers', '2', '--hidden', '64', '--heads', '4', '--kv-heads', '2',
    '--intermediate', '96', '--vocab', '300', '--seed', '21', ...extra])
  assert.equal(r.code, 0, r.stderr)
  return dir
}

async function generate (dir: string, extra: string[] = []): Promise<{ code: number | null, tokens: number[], stderr: string }> {
  const r = await runCli(['generate', '--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(n), '--ignore-eos', '--json', ...extra])
  const done = r.code === 0 ? jsonLines(r.stdout).at(-1) : undefined
  return { code: r.code, tokens: done?.tokens ?? [], stderr: r.stderr }
}

describe('Llama-family architectures through a split swarm (real peer processes)', function () {
  this.timeout(180_000)
  let peers: PeerProcess[] = []
  afterEach(async function () { await stopPeers(peers); peers = [] })

  const families: Array<[string, string[]]> = [
    ['qwen2', ['--tie-embeddings']],
    ['qwen3', ['--head-dim', '24']],
    // a window shorter than prompt + generated tokens, so it masks
    ['mistral', ['--sliding-window', '5']]
  ]
  for (const [arch, extra] of families) {
    // (local runs of these families against the reference: test/shards/engine.spec.ts)
    it(`${arch} (${extra.join(' ')}): two peers [0,1) [1,2) equal the Float64 reference`, async function () {
      const dir = await makeModelCli(arch, extra)
      assert.equal(JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')).model_type, arch)
      const expected = new ReferenceLlama(dir).greedy(prompt, n)
      const swarm = await startSwarm(dir, [[0, 1], [1, 2]])
      peers = swarm.peers
      const remote = await generate(dir, ['--bootstrap', swarm.bootstrap])
      assert.equal(remote.code, 0, remote.stderr)
      assert.deepEqual(remote.tokens, expected)
    })
  }

  it('a client refuses a chain mixing architectures, even under one model id', async function () {
    const qwen = await makeModelCli('qwen2')
    const llama = await makeModelCli('llama')
    const first = await startPeer(qwen, ['--blocks', '0:1', '--model-id', 'mixed'], 'qwen2[0,1)')
    peers.push(first)
    peers.push(await startPeer(llama, ['--blocks', '1:2', '--model-id', 'mixed', '--bootstrap', first.multiaddrs[0]], 'llama[1,2)'))
    const swarm = await Swarm.connect({ bootstrap: [first.multiaddrs[0]], modelDir: qwen, modelId: 'mixed', threads: 1 })
    try {
      const run = async (): Promise<void> => { for await (const _ of swarm.generate({ ids: prompt }, { maxNewTokens: 2 })) { /* drain */ } }
      await assert.rejects(run(), (err: Error) => err.name === 'NoRouteError' && /\b1\b/.test(err.message))
    } finally {
      await swarm.close()
    }
  })

  it('an unknown config.json key is refused by name; --allow-unknown-config proceeds with a loud warning', async function () {
    const dir = await makeModelCli('llama')
    const expected = new ReferenceLlama(dir).greedy(prompt, n)
    const file = path.join(dir, 'config.json')
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), new_attention_trick: 2 }))
    const refused = await generate(dir)
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /config\.json: new_attention_trick: unknown key/)
    const allowed = await generate(dir, ['--allow-unknown-config'])
    assert.equal(allowed.code, 0, allowed.stderr)
    assert.match(allowed.stderr, /WARNING: config\.json key "new_attention_trick" is unknown/)
    assert.deepEqual(allowed.tokens, expected)
  })
})
