// Mocha's spec reporter, plus the closing line `N passed, N failed[, N skipped]` on its own.
const Mocha = require('mocha')
const { EVENT_RUN_END } = Mocha.Runner.constants

class StrataReporter extends Mocha.reporters.Spec {
  constructor (runner, options) {
    super(runner, options)
    runner.once(EVENT_RUN_END, () => {
      const s = this.stats
      const skipped = s.pending > 0 ? `, ${s.pending} skipped` : ''
      // printed after the spec reporter's epilogue
      setImmediate(() => console.log(`${s.passes} passed, ${s.failures} failed${skipped}`))
    })
  }
}
module.exports = StrataReporter
