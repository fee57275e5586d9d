// Terminal manners: escape sequences (colours, screen control, progress bars) only on a terminal,
// never into a pipe or file, with NO_COLOR or with --json. Real processes; the terminal is a
// pseudo-terminal from util-linux `script` (the TTY cases skip where it is absent).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { runCli, STRATA_BIN } from '../helpers/cli.ts'
import { tempDir, tinyModel } from '../helpers/models.ts'

const ESC = '\x1b'
const SCRIPT = '/usr/bin/script'

/** runs `strata ...args` with stdout and stderr on a pseudo-terminal; returns what the terminal showed */
function onTerminal (args: string[], env: NodeJS.ProcessEnv): string {
  const command = [process.execPath, STRATA_BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
  const r = spawnSync(SCRIPT, ['-qec', command, '/dev/null'], { env, encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, r.stderr)
  return r.stdout
}

describe('terminal manners (real processes)', function () {
  this.timeout(120_000)
  const withoutNoColor = (): NodeJS.ProcessEnv => {
    const env = { ...process.env }
    delete env.NO_COLOR
    return env
  }

  it('strata demo into a pipe writes no escape sequences', async function () {
    // the demo's 8 blocks, tiny: it starts 3 peers, kills one mid-generation and compares tokens
    const dir = tinyModel('demo', { layers: 8, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 320, seed: 8 })
    const r = await runCli(['demo', '--dir', dir, '--tokens', '9'], 90_000, withoutNoColor())
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /^▶ identical tokens/m)
    assert.ok(!r.stdout.includes(ESC), JSON.stringify(r.stdout))
    assert.ok(!r.stderr.includes(ESC), JSON.stringify(r.stderr))
  })

  it('make-model draws a progress bar on a terminal, not with NO_COLOR, not into a pipe', async function () {
    if (spawnSync(SCRIPT, ['-V']).status !== 0) this.skip()
    const args = (out: string): string[] => ['make-model', '--out', path.join(tempDir('tty-'), out), '--layers', '1', '--hidden', '16', '--heads', '1', '--kv-heads', '1', '--intermediate', '16', '--vocab', '16', '--seed', '1']
    assert.ok(onTerminal(args('a'), withoutNoColor()).includes(ESC), 'a terminal gets the progress bar')
    const plain = onTerminal(args('b'), { ...process.env, NO_COLOR: '1' })
    assert.ok(!plain.includes(ESC), JSON.stringify(plain))
    assert.match(plain, /^wrote /m)
    const piped = await runCli(args('c'), 60_000, withoutNoColor())
    assert.equal(piped.code, 0, piped.stderr)
    assert.ok(!(piped.stdout + piped.stderr).includes(ESC), JSON.stringify(piped.stderr))
  })
})
