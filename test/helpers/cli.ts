// Runs the real `strata` CLI as a child process.
import { spawn } from 'node:child_process'
import { STRATA_BIN } from '../../src/cli/local-swarm.ts'

export { STRATA_BIN }

export interface CliResult { code: number | null, stdout: string, stderr: string }

/** Runs `strata ...args` to completion (killed after `timeoutMs`), stdout and stderr into pipes. */
export async function runCli (args: string[], timeoutMs = 60_000, env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [STRATA_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`strata ${args.join(' ')} timed out after ${timeoutMs} ms\n${stderr}`)) }, timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

export function jsonLines (stdout: string): Array<Record<string, any>> {
  return stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l))
}
