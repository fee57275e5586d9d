#!/usr/bin/env node
// `npm test`: installs dependencies when missing, then runs the whole mocha suite.
// Extra arguments go to mocha (e.g. `npm test -- --grep loader`).
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { ensureDeps, root, env } from './ensure-deps.mjs'

ensureDeps()
const mocha = path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js')
// peers started by tests cache their measured throughput here, not in the user's home
const testEnv = { ...env, STRATA_CACHE_DIR: process.env.STRATA_CACHE_DIR ?? mkdtempSync(path.join(tmpdir(), 'strata-test-cache-')) }
const r = spawnSync(process.execPath, [mocha, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit', env: testEnv })
process.exit(r.status ?? 1)
