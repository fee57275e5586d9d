#!/usr/bin/env node
// The `strata` CLI: registers the TypeScript loader, then runs src/cli/main.ts.
import { register } from 'tsx/esm/api'
register()
await import('../src/polyfill.ts')
await import('../src/cli/main.ts')
