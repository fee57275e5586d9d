#!/usr/bin/env node
// The `strata` CLI. In a clone (src/ present) it runs the TypeScript sources through tsx, a
// development dependency; in the installed package it runs the compiled dist/, with no loader.
import { existsSync } from 'node:fs'

if (existsSync(new URL('../src/cli/main.ts', import.meta.url))) {
  const { register } = await import('tsx/esm/api')
  register()
  await import('../src/cli/main.ts')
} else {
  await import('../dist/cli/main.js')
}
