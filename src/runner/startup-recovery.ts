/**
 * Startup recovery: ends work a previous process of this node left behind and settles its
 * instances — active ones (ABORTED, reason `restart`) and ones a reaper already settled while this
 * node was gone (their run handle was never released). Queued instances stay queued when the store
 * is shared (another node may run them).
 */
import type { Logger } from 'pino';
import { STATE_CHANGES } from '../domain/instance-state.js';
import type { Store } from '../store/store.js';
import type { EngineLookup } from './run-lifecycle.js';

export const RESTART_MESSAGE =
  'The server restarted while the script instance was active; the run was ended.';

export async function recoverLeftoverRuns(
  store: Pick<Store, 'instances' | 'shared'>,
  engineOf: EngineLookup,
  nodeId: string,
  log: Logger,
  settled: (id: string) => void,
): Promise<number> {
  const leftovers = await store.instances.listUnreleased(nodeId);
  let count = 0;
  for (const instance of leftovers) {
    if (instance.state === 'QUEUED' && store.shared) continue;
    const engine = await engineOf(instance).catch(() => undefined);
    if (instance.runHandle && engine?.recover) {
      try {
        await engine.recover(instance.runHandle);
      } catch (error) {
        log.error({ err: error, instanceId: instance.id }, 'could not end leftover work');
      }
    }
    const { from, to } = STATE_CHANGES.abortOnRecovery;
    const ended = await store.instances.transition(instance.id, from, to, {
      endedAt: new Date(),
      message: RESTART_MESSAGE,
      failureReason: 'restart',
      runHandle: null,
    });
    if (ended) settled(instance.id);
    else await store.instances.releaseHandle(instance.id);
    count += 1;
  }
  if (count > 0) log.warn({ count }, 'ended work left by a previous run of this node');
  return count;
}
