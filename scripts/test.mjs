#!/usr/bin/env node
// `npm test`: installs dependencies when missing, then runs the whole mocha suite.
// Extra arguments go to mocha (e.g. `npm test -- --grep loader`).
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { ensureDeps, root, env } from './ensure-deps.mjs'

ensureDeps()
const mocha = path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js')
const r = spawnSync(process.execPath, [mocha, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit', env })
process.exit(r.status ?? 1)
