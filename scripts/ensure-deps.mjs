// Installs dependencies (npm ci) when node_modules is missing, so the README's two commands
// work on a fresh clone. onnxruntime-node's CUDA download is skipped: there is no network here.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

export const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
export const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' }

export function ensureDeps () {
  if (existsSync(path.join(root, 'node_modules', '.package-lock.json'))) return
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit', env })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
