#!/usr/bin/env node
// `npm test`: installs dependencies when they are missing, then runs the whole mocha suite.
// Extra arguments go to mocha (e.g. `npm test -- test/shards/*.spec.ts`).
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' }
if (!existsSync(path.join(root, 'node_modules', '.package-lock.json'))) {
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit', env })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
const mocha = path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js')
const r = spawnSync(process.execPath, [mocha, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit', env })
process.exit(r.status ?? 1)
