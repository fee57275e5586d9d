import assert from 'node:assert/strict'
describe('environment', () => {
  it('has Promise.withResolvers (polyfilled on Node 20)', () => {
    const { promise, resolve } = Promise.withResolvers<number>()
    resolve(3)
    return promise.then((v) => assert.equal(v, 3))
  })
})
