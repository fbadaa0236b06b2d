/**
 * The `opendlf` client commands compiled to JavaScript in a temporary directory, for tests that
 * start them many times. Through tsx every start spends about two seconds in the TypeScript loader;
 * compiled, a start is what `bin/opendlf.js` does after `npm run build` (it prefers `dist/`).
 *
 * Compiled: `src/cli/main.ts` and what it imports statically, each file alone
 * (`ts.transpileModule`, no type check: `npm run typecheck` does that), in the layout of the
 * sources, beside a `node_modules` link. The server's modules, which `serve` and `credentials`
 * import only when they run, are left out: use tsx for those commands.
 */
import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { tempDir } from './server.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

export interface CompiledCli {
  /** The compiled `src/cli/main.js`: run it with `node`. */
  readonly main: string;
  remove(): void;
}

/** Relative static imports (`import … from './x.js'`, `export … from`), not `import()`. */
const STATIC_IMPORT = /^\s*(?:import|export)\s[^;]*?from\s+'(\.{1,2}\/[^']+)'/gm;

/** `src/cli/main.ts` and every source it reaches through static imports. */
function staticClosure(entry: string): string[] {
  const seen = new Set<string>();
  const pending = [entry];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const match of readFileSync(file, 'utf8').matchAll(STATIC_IMPORT)) {
      pending.push(join(dirname(file), (match[1] ?? '').replace(/\.js$/, '.ts')));
    }
  }
  return [...seen];
}

export function compileCli(): CompiledCli {
  const out = tempDir('opendlf-compiled-cli-');
  const compilerOptions: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    // ES modules (transpileModule cannot see package.json's "type": "module").
    module: ts.ModuleKind.ES2022,
    verbatimModuleSyntax: true,
    esModuleInterop: true,
  };
  for (const file of staticClosure(join(REPO, 'src', 'cli', 'main.ts'))) {
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      compilerOptions,
      fileName: file,
    });
    const target = join(out, relative(REPO, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
  }
  cpSync(join(REPO, 'package.json'), join(out, 'package.json'));
  symlinkSync(join(REPO, 'node_modules'), join(out, 'node_modules'), 'dir');
  return {
    main: join(out, 'src', 'cli', 'main.js'),
    remove: () => rmSync(out, { recursive: true, force: true }),
  };
}
