// Test access to the local-swarm process helpers (shared with the demo and chaos commands).
export * from '../../src/cli/local-swarm.ts'
