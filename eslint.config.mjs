import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinRules } from 'eslint/use-at-your-own-risk';

/**
 * Size rules of src/: no file over 300 lines, no function over 60. A CLI's `main` in src/bin
 * (argument parsing and dispatch, read top to bottom) is exempt: this wraps ESLint's own
 * max-lines-per-function and drops its report for a function declaration named `main` there.
 */
const coreMaxLinesPerFunction = builtinRules.get('max-lines-per-function');
const isCliMain = (context, node) =>
  /[/\\]src[/\\]bin[/\\][^/\\]+\.ts$/.test(context.filename) &&
  node?.type === 'FunctionDeclaration' &&
  node.id?.name === 'main';
const sizePlugin = {
  rules: {
    'max-lines-per-function': {
      meta: coreMaxLinesPerFunction.meta,
      create(context) {
        const filtering = Object.create(context, {
          report: {
            value: (descriptor) =>
              isCliMain(context, descriptor.node) ? undefined : context.report(descriptor),
          },
        });
        return coreMaxLinesPerFunction.create(filtering);
      },
    },
  },
};
const SIZE_LIMITS = {
  'max-lines': ['error', { max: 300 }],
  'size/max-lines-per-function': ['error', { max: 60 }],
};

/** Relative-import patterns (gitignore syntax) for the folders a module must not reach. */
const folder = (name) => [`**/${name}`, `**/${name}/**`];
const NOT_TEST_BENCH_SCRIPTS = {
  group: [...folder('test'), ...folder('bench'), ...folder('scripts')],
  message: 'src/ must not import test/, bench/ or scripts/.',
};
/** zod's values come through src/lib/zod.ts, which turns its JIT off before any schema is built. */
const ZOD_THROUGH_LIB = {
  name: 'zod',
  message: "take z from src/lib/zod (zod's JIT off before any schema is built); type-only imports are fine.",
  allowTypeImports: true,
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'src/gen/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // Boundaries. src/ never imports test/, bench/ or scripts/ (they import src/, not the reverse).
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: [ZOD_THROUGH_LIB], patterns: [NOT_TEST_BENCH_SCRIPTS] }],
    },
  },
  // The product (daemon, CLIs, providers, …) never imports the emulators or the dev tooling;
  // only the cdh-emulator bin and the tooling itself may.
  {
    files: ['src/**/*.ts'],
    ignores: ['src/emulators/**', 'src/devtools/**', 'src/bin/cdh-emulator.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [ZOD_THROUGH_LIB],
          patterns: [
            NOT_TEST_BENCH_SCRIPTS,
            {
              group: [...folder('emulators'), ...folder('devtools')],
              message:
                'product code must not import src/emulators/ or src/devtools/ (only cdh-emulator and tooling may).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/gen/**'],
    plugins: { size: sizePlugin },
    rules: SIZE_LIMITS,
  },
  // Nothing outside test/ imports test/.
  {
    files: ['bench/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: folder('test'), message: 'only test/ may import test/.' }] },
      ],
    },
  },
);
