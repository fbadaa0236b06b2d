/**
 * Script use cases: create, modify, get, list, delete (DIGEST §2.3). Deleting a script first stops
 * its running instances, then removes it with its instances and their files.
 */
import { DlfError, invalidParameter } from '../domain/dlf-error.js';
import {
  MAX_SCRIPTS_PER_WORKSPACE,
  parseScriptInput,
  type Namespace,
  type Script,
} from '../domain/script.js';
import { isTerminal } from '../domain/instance-state.js';
import type { ScriptPage, Store } from '../store/store.js';
import type { RunQueue } from './run-queue.js';

export interface ListScriptsParams {
  offset?: string | undefined;
  limit?: string | undefined;
  scriptName?: string | undefined;
}

/** Documented default page size; the documented maximum is 100, 1,000 is accepted (DIGEST §2.3). */
export const DEFAULT_LIST_LIMIT = 10;
export const MAX_LIST_LIMIT = 1000;
const MAX_OFFSET = 1_000_000_000;

function parseIntParam(name: string, raw: string | undefined, min: number, max: number, fallback: number) {
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw invalidParameter(`${name} must be an integer from ${min} to ${max}`);
  const value = Number(raw);
  if (value < min || value > max) throw invalidParameter(`${name} must be an integer from ${min} to ${max}`);
  return value;
}

export class ScriptService {
  constructor(
    private readonly store: Store,
    private readonly runs: RunQueue,
    private readonly actor: string,
  ) {}

  async create(ns: Namespace, body: unknown): Promise<void> {
    const input = parseScriptInput(body);
    if ((await this.store.scripts.count(ns)) >= MAX_SCRIPTS_PER_WORKSPACE) throw new DlfError('DLF.6253');
    if (!(await this.store.scripts.create(ns, input, this.actor))) throw new DlfError('DLF.0202');
  }

  async update(ns: Namespace, pathName: string, body: unknown): Promise<void> {
    const existing = await this.get(ns, pathName);
    const input = parseScriptInput(body);
    if (input.name !== pathName) {
      throw invalidParameter(`the script name cannot be modified (path '${pathName}', body '${input.name}')`);
    }
    if (input.type !== existing.type) {
      throw invalidParameter(
        `the script type cannot be modified (stored ${existing.type}, body ${input.type})`,
      );
    }
    if (!(await this.store.scripts.update(ns, input))) throw new DlfError('DLF.6201');
  }

  async get(ns: Namespace, name: string): Promise<Script> {
    const script = await this.store.scripts.get(ns, name);
    if (!script) throw new DlfError('DLF.6201');
    return script;
  }

  list(ns: Namespace, params: ListScriptsParams): Promise<ScriptPage> {
    const offset = parseIntParam('offset', params.offset, 0, MAX_OFFSET, 0);
    const limit = parseIntParam('limit', params.limit, 1, MAX_LIST_LIMIT, DEFAULT_LIST_LIMIT);
    return this.store.scripts.list(ns, { offset, limit, nameContains: params.scriptName ?? '' });
  }

  async delete(ns: Namespace, name: string): Promise<void> {
    const script = await this.get(ns, name);
    // Newest first; a script's instance history is bounded by retention, so this is a bounded read.
    const instances = await this.store.instances.listForScript(script.id, 100_000);
    await Promise.all(instances.filter((i) => !isTerminal(i.state)).map((i) => this.runs.stop(i.id)));
    if (!(await this.store.scripts.delete(ns, name))) throw new DlfError('DLF.6201');
    await this.runs.discardRunFiles(instances.map((i) => i.id));
  }
}
