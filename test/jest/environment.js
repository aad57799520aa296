/**
 * jest's node environment plus one step after the file's last `afterAll`: whatever the helpers
 * registered (test/helpers/teardown.ts) and nobody closed is closed here, so a suite whose
 * `beforeAll` failed half way still closes its gateways, peers and databases and exits. A close
 * that fails or hangs fails the file with the leftover's name.
 */
const { TestEnvironment } = require('jest-environment-node');

const DISPOSE = Symbol.for('cloudphone-realtime.test.disposeLeftovers');

class GatewayTestEnvironment extends TestEnvironment {
  async handleTestEvent(event, state) {
    if (event.name !== 'run_finish') return;
    const dispose = this.global[DISPOSE];
    if (typeof dispose !== 'function') return;
    for (const error of await dispose()) state.unhandledErrors.push(error);
  }
}

module.exports = GatewayTestEnvironment;
