// ESLint flat config: @eslint/js and typescript-eslint recommended (not type-aware: fast, and the same for the
// .ts sources, tests, bench and the plain .js/.mjs scripts). Node globals everywhere; Jest's in the tests.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  globalIgnores(['dist/', 'node_modules/', 'build/', 'coverage/', '.rig/', '.bench/']),
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      sourceType: 'module',
      globals: { ...globals.node },
    },
    rules: {
      // `_`-prefixed names are deliberately unused (tsconfig's noUnusedParameters has the same convention).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },
  {
    files: ['__tests__/**', 'test/**'],
    languageOptions: { globals: { ...globals.jest } },
  },
);
