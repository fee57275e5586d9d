// The image definition, checked without a container engine (none runs here): the Dockerfile is
// parsed, and its commands run outside Docker on the tracked files only (a clean checkout) laid
// out as the image lays them out.
// - build stage: every COPY source is tracked; `npm run build` runs. Not run: `npm ci` (the
//   shared node_modules, installed from the same lockfile, stands in) and `npm prune` (it would
//   prune that shared tree), nor the runtime stage's useradd/chown (root, system files).
// - runtime stage (dist/, bin/, package.json, no src/): ENTRYPOINT + CMD run; with the stage's
//   ENV, a real peer becomes healthy by the HEALTHCHECK command and unhealthy once it is gone.
// - docker-compose.yml's flow: a bootstrap peer with an identity file, a peer, a client and
//   `strata health` that join by address alone (no peer id); the identity is 0600 and survives a
//   restart.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { e2eShape, localTokens } from '../helpers/local.ts'
import { tinyModel } from '../helpers/models.ts'
import { PeerProcess, freePort, stopPeers, type PeerEventLine } from '../helpers/swarm.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

interface Instruction { op: string, args: string }

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function parseDockerfile (text: string): Instruction[] {
  const out: Instruction[] = []
  let current = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (current === '' && (line === '' || line.startsWith('#'))) continue
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' '
      continue
    }
    current += line
    const m = /^(\S+)\s+(.*)$/.exec(current)
    assert.ok(m !== null, `unparsable Dockerfile line: ${current}`)
    out.push({ op: m[1].toUpperCase(), args: m[2].trim() })
    current = ''
  }
  return out
}

/** An exec-form (JSON array) command; the image's `node` is this test's node. */
function execForm (args: string): string[] {
  assert.ok(args.startsWith('['), `exec form expected (no shell wrapper that cannot fail): ${args}`)
  const argv = JSON.parse(args) as string[]
  return argv.map((a, i) => i === 0 && a === 'node' ? process.execPath : a)
}

/** `ENV A=1 B=2` → { A: '1', B: '2' } */
function envOf (args: string): Record<string, string> {
  return Object.fromEntries(args.split(/\s+/).map((kv) => { const i = kv.indexOf('='); return [kv.slice(0, i), kv.slice(i + 1)] }))
}

interface Run { code: number | null, stdout: string, stderr: string }

async function run (argv: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<Run> {
  return await new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${argv.join(' ')} timed out after ${timeoutMs} ms\n${stderr}`)) }, timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

describe('the Docker image definition, run outside Docker on a clean checkout', function () {
  this.timeout(240_000)
  const instructions = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))
  const stages = instructions.reduce<Instruction[][]>((acc, i) => { if (i.op === 'FROM') acc.push([]); acc.at(-1)?.push(i); return acc }, [])
  const [build, runtime] = stages
  const work = mkdtempSync(path.join(tmpdir(), 'strata-docker-'))
  const context = path.join(work, 'context')
  const app = path.join(work, 'app')
  const dir = tinyModel('e2e', e2eShape)
  const peers: PeerProcess[] = []
  let env: NodeJS.ProcessEnv
  let healthcheck: string[]

  before(async function () {
    assert.equal(stages.length, 2, 'a build stage and a runtime stage')
    // a clean checkout: the tracked files only (no dist/, no caches)
    const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter((f) => f !== '')
    for (const f of tracked) {
      mkdirSync(path.dirname(path.join(context, f)), { recursive: true })
      cpSync(path.join(ROOT, f), path.join(context, f))
    }
    for (const copy of build.filter((i) => i.op === 'COPY')) {
      for (const src of copy.args.split(/\s+/).slice(0, -1)) {
        assert.ok(tracked.some((f) => f === src || f.startsWith(src + '/')), `COPY ${src}: not in a clean checkout`)
      }
    }
    // `RUN npm ci`: the shared node_modules (same lockfile) stands in
    symlinkSync(realpathSync(path.join(ROOT, 'node_modules')), path.join(context, 'node_modules'))
    const runs = build.filter((i) => i.op === 'RUN').map((i) => i.args)
    assert.deepEqual(runs, ['npm ci --no-audit --no-fund', 'npm run build && npm prune --omit=dev --no-audit --no-fund'])
    const built = await run(['npm', 'run', 'build'], context, { ...process.env, ...envOf(build.find((i) => i.op === 'ENV')?.args ?? '') }, 180_000)
    assert.equal(built.code, 0, built.stderr)

    // the runtime stage's COPYs: node_modules and dist from the build stage; package.json, bin/ and docker/ from the context
    mkdirSync(app)
    for (const copy of runtime.filter((i) => i.op === 'COPY')) {
      const [src, dest] = copy.args.replace(/^--from=build\s+/, '').split(/\s+/)
      const from = copy.args.startsWith('--from=build') ? path.join(context, src.replace(/^\/app\//, '')) : path.join(context, src)
      const to = path.join(app, dest === './' ? path.basename(src) : dest)
      if (src.endsWith('node_modules')) symlinkSync(realpathSync(from), to)
      else cpSync(from, to, { recursive: true })
    }
    env = { ...process.env, ...Object.assign({}, ...runtime.filter((i) => i.op === 'ENV').map((i) => envOf(i.args))) }
    assert.ok(env.STRATA_METRICS_PORT !== undefined, 'the image gives peers a metrics (and health) port')
    // the image's port, moved off 9100 so that parallel runs on this host do not collide
    env.STRATA_METRICS_PORT = String(await freePort())
    const hc = runtime.find((i) => i.op === 'HEALTHCHECK')
    assert.ok(hc !== undefined)
    healthcheck = execForm(hc.args.replace(/^(--\S+\s+)*CMD\s+/, ''))
  })

  after(async function () {
    await stopPeers(peers)
    rmSync(work, { recursive: true, force: true })
  })

  async function startPeer (args: string[], label: string): Promise<PeerProcess> {
    const entry = execForm(runtime.find((i) => i.op === 'ENTRYPOINT')!.args)
    const p = new PeerProcess(spawn(entry[0], [...entry.slice(1), 'peer', '--model', dir, '--json', ...args], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] }), label)
    peers.push(p)
    const ready = await p.waitFor((e: PeerEventLine) => e.event === 'ready', 90_000)
    p.peerId = ready.peerId
    p.multiaddrs = ready.multiaddrs
    return p
  }

  it('runs ENTRYPOINT + CMD from the runtime layout (compiled dist/, no src/)', async function () {
    const entry = execForm(runtime.find((i) => i.op === 'ENTRYPOINT')!.args)
    const cmd = execForm(runtime.find((i) => i.op === 'CMD')!.args)
    assert.throws(() => statSync(path.join(app, 'src')), 'no sources in the image')
    const r = await run([...entry, ...cmd], app, env)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /peer/)
  })

  it('HEALTHCHECK: healthy while a peer serves, unhealthy once it is gone; identity 0600 and kept across a restart', async function () {
    const key = path.join(work, 'data', 'key')
    let peer = await startPeer(['--blocks', '0:4', '--identity', key], 'image-peer')
    const healthy = await run(healthcheck, app, env)
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr)
    assert.match(healthy.stdout, /200 .*"status":"serving"/)
    assert.equal(statSync(key).mode & 0o777, 0o600)
    const id = peer.peerId

    peer.kill('SIGTERM')
    assert.equal(await peer.exited, 0)
    const gone = await run(healthcheck, app, env)
    assert.equal(gone.code, 1, gone.stdout)
    assert.match(gone.stdout, /ECONNREFUSED/)

    peer = await startPeer(['--blocks', '0:4', '--identity', key], 'image-peer-again')
    assert.equal(peer.peerId, id, 'the same identity after a restart')
    assert.equal((await run(healthcheck, app, env)).code, 0)
    await stopPeers(peers.splice(0))
  })

  it("docker-compose.yml's flow: peers and a client join by address alone, with exact tokens", async function () {
    const compose = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')
    assert.doesNotMatch(compose, /STRATA_BOOTSTRAP|\/p2p\//, 'no peer id to copy by hand')
    const bootstrap = await startPeer(['--blocks', '0:2', '--identity', path.join(work, 'data', 'bootstrap-key')], 'compose-bootstrap')
    const address = bootstrap.multiaddrs[0].replace(/\/p2p\/.*$/, '')
    // a second metrics port: both peers run on this host
    const envBefore = env
    env = { ...env, STRATA_METRICS_PORT: String(await freePort()) }
    try {
      await startPeer(['--blocks', '2:4', '--bootstrap', address], 'compose-peer')
    } finally {
      env = envBefore
    }
    const entry = execForm(runtime.find((i) => i.op === 'ENTRYPOINT')!.args)
    const prompt = [1, 20, 30, 40, 50]
    const r = await run([...entry, 'generate', '--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', '6', '--ignore-eos', '--json', '--bootstrap', address], app, env, 90_000)
    assert.equal(r.code, 0, r.stderr)
    const done = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
    assert.deepEqual(done.tokens, await localTokens(dir, prompt, 6))
    // an operator asks the swarm by the same address, without a model id either
    const h = await run([...entry, 'health', '--bootstrap', address, '--json'], app, env, 60_000)
    assert.equal(h.code, 0, h.stderr)
    const report = JSON.parse(h.stdout)
    assert.equal(report.model, bootstrap.events.find((e) => e.event === 'ready')?.modelId)
    assert.equal(report.peers.length, 2)
  })
})
