// The package as users get it: `npm pack` (which builds dist/), then a fresh project that runs
// `npm install <tarball>` (dependencies from the registry) and uses it: the CLI through npx, a
// plain .mjs program generating through a 2-peer swarm started from the installed bin, and a
// TypeScript consumer typechecked against the shipped declarations. The slowest test of the suite.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startPeer, stopPeers, type PeerProcess } from '../helpers/swarm.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CONSUMER = fileURLToPath(new URL('./consumer', import.meta.url))
/** the packed tarball stays well under this; it holds compiled code and the README only */
const MAX_TARBALL_BYTES = 400 * 1024
const NODE_MAJOR = Number(process.versions.node.split('.')[0])

interface Run { code: number | null, stdout: string, stderr: string }

async function run (command: string, args: string[], cwd: string, timeoutMs: number): Promise<Run> {
  return await new Promise((resolve, reject) => {
    // onnxruntime-node's install script would fetch GPU binaries: skipped, no network but the registry
    const env: NodeJS.ProcessEnv = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', NO_COLOR: '1' }
    // under `npx -p node@22 …` (.ci/run) the outer npx's package list would leak into the inner npx
    delete env.npm_config_package
    delete env.npm_config_call
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${command} ${args.join(' ')} timed out after ${timeoutMs} ms\n${stderr}`)) }, timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

describe('the packed package, installed the way a user would (npm pack, npm install <tarball>)', function () {
  this.timeout(300_000)
  const work = mkdtempSync(path.join(tmpdir(), 'strata-pack-'))
  const project = path.join(work, 'app')
  const installedBin = path.join(project, 'node_modules', '.bin', 'strata')
  let packed: { filename: string, size: number, files: Array<{ path: string }> }
  let install: Run
  const peers: PeerProcess[] = []

  before(async function () {
    const started = Date.now()
    const pack = await run('npm', ['pack', '--json', '--pack-destination', work], ROOT, 240_000)
    assert.equal(pack.code, 0, pack.stderr)
    packed = JSON.parse(pack.stdout)[0]
    mkdirSync(project)
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'strata-consumer', private: true, type: 'module' }))
    install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(work, packed.filename)], project, 240_000)
    assert.equal(install.code, 0, install.stderr)
    console.log(`      packed ${packed.filename}: ${packed.size} bytes, ${packed.files.length} files; pack + install ${((Date.now() - started) / 1000).toFixed(1)} s`)
  })

  after(async function () {
    await stopPeers(peers)
    rmSync(work, { recursive: true, force: true })
  })

  it('ships compiled code, declarations, the bin and the README, nothing else, in a small tarball', function () {
    const files = packed.files.map((f) => f.path)
    for (const f of ['package.json', 'README.md', 'bin/strata.js', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/peer/index.d.ts', 'dist/serve/index.d.ts', 'dist/protocol/index.d.ts', 'dist/shards/worker/engine-worker.js']) {
      assert.ok(files.includes(f), `${f} is shipped`)
    }
    const unexpected = files.filter((f) => !/^(package\.json|README\.md|bin\/strata\.js|dist\/.+\.(js|d\.ts))$/.test(f))
    assert.deepEqual(unexpected, [], 'no sources, tests, scripts or models')
    assert.ok(packed.size < MAX_TARBALL_BYTES, `tarball ${packed.size} bytes`)
  })

  it('installs without EBADENGINE warnings on the supported Node versions (22 and later)', function () {
    if (NODE_MAJOR < 22) this.skip()
    assert.doesNotMatch(install.stdout + install.stderr, /EBADENGINE/)
  })

  it('npx strata --help and npx strata make-model work without tsx', async function () {
    assert.ok(!existsSync(path.join(project, 'node_modules', 'tsx')), 'tsx is a development dependency only')
    const help = await run('npx', ['--no-install', 'strata', '--help'], project, 60_000)
    assert.equal(help.code, 0, help.stderr)
    assert.match(help.stdout, /^Usage: strata /)
    for (const command of ['make-model', 'generate', 'peer', 'serve', 'health', 'demo']) assert.match(help.stdout, new RegExp(`\\n  ${command} `))
    const made = await run('npx', ['--no-install', 'strata', 'make-model', '--out', 'model', '--layers', '4', '--hidden', '64', '--heads', '4', '--kv-heads', '2', '--intermediate', '96', '--vocab', '320', '--seed', '3'], project, 60_000)
    assert.equal(made.code, 0, made.stderr)
    assert.ok(existsSync(path.join(project, 'model', 'config.json')))
  })

  it('a plain .mjs program generates through a 2-peer swarm started from the installed bin: same tokens as local', async function () {
    const model = path.join(project, 'model')
    assert.ok(existsSync(path.join(model, 'config.json')), 'made by the previous test')
    peers.push(await startPeer(model, ['--blocks', '0:2'], 'installed peer [0,2)', 60_000, { bin: installedBin }))
    const bootstrap = peers[0].multiaddrs[0]
    peers.push(await startPeer(model, ['--blocks', '2:4', '--bootstrap', bootstrap], 'installed peer [2,4)', 60_000, { bin: installedBin }))
    copyFileSync(path.join(CONSUMER, 'generate.mjs'), path.join(project, 'generate.mjs'))
    const r = await run(process.execPath, ['generate.mjs', model, bootstrap], project, 120_000)
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    assert.equal(out.viaLocal.length, 8)
    assert.deepEqual(out.viaSwarm, out.viaLocal)
    assert.deepEqual(out.viaGateway, out.viaLocal)
    assert.equal(out.peerServer, 'function')
    assert.match(out.protocol, /^\/strata\/inference\//)
    for (const p of peers) assert.ok(p.events.some((e) => e.event === 'session_opened'), `${p.label} served the generation`)
  })

  it('a TypeScript consumer typechecks against the shipped declarations (tsc --noEmit)', async function () {
    copyFileSync(path.join(CONSUMER, 'consumer.ts'), path.join(project, 'consumer.ts'))
    // the consumer brings its own TypeScript and @types/node: those of this repository
    const tsconfig = JSON.parse(readFileSync(path.join(CONSUMER, 'tsconfig.json'), 'utf8'))
    tsconfig.compilerOptions.typeRoots = [path.join(ROOT, 'node_modules', '@types')]
    writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify(tsconfig))
    const r = await run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], project, 120_000)
    assert.equal(r.code, 0, r.stdout + r.stderr)
  })
})
