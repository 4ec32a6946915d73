// Lint that keeps the house rules (docs/ARCHITECTURE.md): which room may
// import which, no import cycles, and the TypeScript checks that catch real
// bugs (floating promises are marked with `void`, no empty catch blocks).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';

/** Imports a room may not make: [files, patterns, why]. */
const boundaries = [
  [['src/core/**/*.ts'], ['vscode', '**/host/**', '../host/*', '**/worker/**', '**/cli'], 'src/core is plain Node: no vscode, host, worker or CLI'],
  [['webview/**/*.ts'], ['@tensorflow/*', 'onnxruntime-node', 'sharp', '**/src/core/**', '**/core/**', '**/host/**', 'vscode'], 'webview is browser code: no TensorFlow.js, core, host or vscode'],
  [['src/shared/**/*.ts'], ['vscode', '@tensorflow/*', '**/core/**', '../core/*', '**/host/**', '**/worker/**', '**/cli'], 'src/shared holds plain message types and imports nothing of ours'],
  [['src/cli.ts'], ['vscode', './host/*', '**/host/**', './worker/*'], 'the CLI runs core in-process and never imports host'],
  [['src/worker/**/*.ts'], ['vscode', '**/host/**'], 'the worker is a plain Node process'],
  [['src/core/onnx/**/*.ts'], ['vscode', '**/host/**', '**/worker/**', '**/cli', '../export/*', '../export/**', '../run', '../train/*', '../evaluate', '../predict'], 'src/core/onnx (converter, builder, engine) is a room extraction and export depend on: it imports neither'],
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tools/**', 'models/**', 'test-results/**', 'bench/out/**', '**/*.mjs', '**/*.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['src/**/*.ts', 'webview/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.json'] })],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js'],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'no-empty': ['error', { allowEmptyCatch: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...boundaries.map(([files, patterns, message]) => ({
    files,
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: patterns, message }] }] },
  })),
);
