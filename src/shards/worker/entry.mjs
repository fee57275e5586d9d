// Worker-thread entry: workers do not inherit loader hooks registered at run time, so register
// the TypeScript loader here before importing the real worker module.
import { register } from 'tsx/esm/api'
register()
await import('./engine-worker.ts')
