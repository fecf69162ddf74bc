// TypeScript is compiled by SWC to CommonJS; type checking is `tsc --noEmit` (npm test runs both).
// @kubernetes/client-node and its auth and SOCKS proxy dependencies ship ES modules only, so they are compiled too.
// The tests run on the Node.js this repository supports; the AWS SDK's notice about future Node versions is noise.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const esmOnly = ['@kubernetes/client-node', 'openid-client', 'oauth4webapi', 'jose', 'socks-proxy-agent', 'agent-base'].join('|');
const base = {
  transform: {
    '^.+\\.(t|j|mj)sx?$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esmOnly})/)`],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  testEnvironment: 'node',
  // Property tests run thousands of cases; on a busy 2-core machine they need more than jest's 5 s default.
  testTimeout: 30_000,
  // Only test/ holds tests; the stack's data (etcd has its own *.snap files) is never scanned.
  roots: ['<rootDir>/test'],
};

module.exports = {
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...base,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
    {
      ...base,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/e2e/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
  ],
};
