// ESM throughout: the @actions/* packages ship only ESM, so ts-jest runs in ESM mode
// (node --experimental-vm-modules, see package.json "test").
const tsJest = ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: { ignoreCodes: [151002] } }];
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': tsJest },
  testEnvironment: 'node',
};
export default {
  // End-to-end pushes through real engines take seconds to minutes; jest reads this only at the top level.
  testTimeout: 300_000,
  // `npm run test:unit -- --coverage`: what the unit tests reach of src/, with no engine (coverage/, not committed)
  collectCoverageFrom: ['<rootDir>/src/**/*.ts'],
  coverageReporters: ['text-summary', 'json-summary', 'lcov'],
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/__tests__/unit/**/*.test.ts'] },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/__tests__/e2e/**/*.test.ts'],
      // brings the engines up (test/rig/engines.sh all); jest runs it only when an e2e test is selected
      globalSetup: '<rootDir>/test/rig/global-setup.mjs',
    },
  ],
};
