// `--fault-rate`: which steps a low-rate fault hits (evenly spaced, deterministic).
import assert from 'node:assert/strict'
import { faultSchedule } from '../../src/peer/config.ts'

describe('peer/fault-schedule', function () {
  it('rate 0.2 hits every 5th step; rate 1 every step; rate 0.3 three in ten', function () {
    const hits = (rate: number, n: number): number[] => { const due = faultSchedule(rate); return Array.from({ length: n }, (_, i) => i + 1).filter(() => due()) }
    assert.deepEqual(hits(0.2, 20), [5, 10, 15, 20])
    assert.deepEqual(hits(1, 4), [1, 2, 3, 4])
    assert.equal(hits(0.3, 10).length, 3)
  })

  it('refuses a rate outside (0, 1]', function () {
    for (const r of [0, -1, 1.5, Number.NaN]) assert.throws(() => faultSchedule(r), RangeError)
  })
})
