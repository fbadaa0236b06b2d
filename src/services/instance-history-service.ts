/**
 * Run history (extension): the instances of a script, or of a whole workspace, newest first, with
 * filters and paging (domain/instance-history.ts says which). Reads only: the store answers each
 * listing with two index-backed statements and no results.
 */
import type { InstanceSummary } from '../domain/instance.js';
import { parseInstanceHistoryParams, type InstanceHistoryParams } from '../domain/instance-history.js';
import type { Namespace } from '../domain/script.js';
import type { InstanceHistoryPage, Store } from '../store/store.js';
import { liveState, type RunQueue } from './run-queue.js';
import type { ScriptService } from './script-service.js';

export class InstanceHistoryService {
  constructor(
    private readonly store: Store,
    private readonly scripts: ScriptService,
    private readonly runs: RunQueue,
  ) {}

  /** One script's runs; DLF.6201 when the script does not exist. `scriptName` in `params` is ignored. */
  async forScript(
    ns: Namespace,
    scriptName: string,
    params: InstanceHistoryParams,
  ): Promise<InstanceHistoryPage> {
    const filter = parseInstanceHistoryParams({ ...params, scriptName: undefined });
    const script = await this.scripts.get(ns, scriptName);
    if (filter === 'none') return { total: 0, instances: [] };
    // By id too: a script deleted and created again under the same name does not inherit the
    // runs its predecessor's deletion is still stopping.
    return this.withLiveStates(
      await this.store.instances.history(ns, { ...filter, scriptName: script.name, scriptId: script.id }),
    );
  }

  /**
   * Every run in the caller's workspace, or those of the script with exactly `scriptName` (none
   * when there is no such script: a script's runs are deleted with it).
   */
  async forWorkspace(ns: Namespace, params: InstanceHistoryParams): Promise<InstanceHistoryPage> {
    const filter = parseInstanceHistoryParams(params);
    if (filter === 'none') return { total: 0, instances: [] };
    if (filter.scriptName === undefined) {
      return this.withLiveStates(await this.store.instances.history(ns, filter));
    }
    // Name and id, as for one script's listing: the script index leads with both.
    const script = await this.store.scripts.get(ns, filter.scriptName);
    if (!script) return { total: 0, instances: [] };
    return this.withLiveStates(await this.store.instances.history(ns, { ...filter, scriptId: script.id }));
  }

  /**
   * Filters match the stored state; the state shown is the live one (a DuckDB run's first
   * 250 ms are stored LAUNCHING while it already runs here), as GET instance shows it.
   */
  private withLiveStates(page: InstanceHistoryPage): InstanceHistoryPage {
    const instances = page.instances.map((instance): InstanceSummary => {
      const state = liveState(this.runs, instance);
      return state === instance.state ? instance : { ...instance, state };
    });
    return { total: page.total, instances };
  }
}
