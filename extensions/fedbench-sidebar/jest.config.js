// The panel's state logic (src/model.ts) is plain TypeScript: ts-jest runs its tests without a browser.
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: { module: 'commonjs', esModuleInterop: true, types: ['jest'] } }]
  }
};
