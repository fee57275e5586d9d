#!/usr/bin/env node
// `npm run demo`: installs dependencies when missing, then runs `strata demo`.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { ensureDeps, root, env } from './ensure-deps.mjs'

ensureDeps()
const r = spawnSync(process.execPath, [path.join(root, 'bin', 'strata.js'), 'demo', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit', env })
process.exit(r.status ?? 1)
