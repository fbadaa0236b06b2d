/**
 * The instance state machine — the only module that knows which state may follow which.
 *
 *   QUEUED     accepted by execute; waiting for a free run slot (API status LAUNCHING). Moved by the
 *              RunSupervisor to LAUNCHING, or to STOPPED by a stop request (it then never starts).
 *   LAUNCHING  a slot is taken and the engine is starting the work (process spawn, database
 *              connection); no handle that could be cancelled exists yet (API LAUNCHING).
 *   RUNNING    the engine reported a handle (process group, query connection); the work runs (API
 *              RUNNING). A stop request is recorded in `stopRequestedAt` while the stop ladder runs,
 *              so the state stays RUNNING until the work is really gone.
 *   FINISHED   the work ended successfully (API FINISHED).
 *   FAILED     the script failed: non-zero exit, SQL error, output limit, engine unreachable (API FAILED).
 *   STOPPED    a stop request ended the work (API FAILED, "The script instance is stopped.").
 *   TIMED_OUT  the per-instance timeout ended the work (API FAILED).
 *   ABORTED    the node that ran it went away: shut down (after the drain timeout), restarted after a
 *              crash (settled by its recovery), lost (lease expired, settled by another node's
 *              reaper: "node lost"), or cut off from the store (fenced) (API FAILED).
 *
 * Terminal states never change again: every persisted transition is a guarded update whose WHERE
 * clause lists the allowed source states, so the first terminal state written wins.
 */
export const INSTANCE_STATES = [
  'QUEUED',
  'LAUNCHING',
  'RUNNING',
  'FINISHED',
  'FAILED',
  'STOPPED',
  'TIMED_OUT',
  'ABORTED',
] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

export const TERMINAL_STATES = ['FINISHED', 'FAILED', 'STOPPED', 'TIMED_OUT', 'ABORTED'] as const;
export type TerminalState = (typeof TERMINAL_STATES)[number];
export const ACTIVE_STATES = ['QUEUED', 'LAUNCHING', 'RUNNING'] as const;
export type ActiveState = (typeof ACTIVE_STATES)[number];

/** Which states may move to which. Anything not listed is refused. */
export const TRANSITIONS: Readonly<Record<InstanceState, readonly InstanceState[]>> = {
  QUEUED: ['LAUNCHING', 'STOPPED', 'ABORTED', 'FAILED'],
  LAUNCHING: ['RUNNING', 'FINISHED', 'FAILED', 'STOPPED', 'TIMED_OUT', 'ABORTED'],
  RUNNING: ['FINISHED', 'FAILED', 'STOPPED', 'TIMED_OUT', 'ABORTED'],
  FINISHED: [],
  FAILED: [],
  STOPPED: [],
  TIMED_OUT: [],
  ABORTED: [],
};

/** The four statuses DataArts documents; Terraform and the SDKs know no others. */
export type ApiStatus = 'LAUNCHING' | 'RUNNING' | 'FINISHED' | 'FAILED';

export function isTerminal(state: InstanceState): state is TerminalState {
  return (TERMINAL_STATES as readonly InstanceState[]).includes(state);
}

export function canTransition(from: InstanceState, to: InstanceState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The source states from which `to` may be reached: the WHERE clause of the guarded update. */
export function allowedSources(to: InstanceState): InstanceState[] {
  return INSTANCE_STATES.filter((from) => canTransition(from, to));
}

export function assertTransition(from: InstanceState, to: InstanceState): void {
  if (!canTransition(from, to)) throw new Error(`illegal instance transition ${from} -> ${to}`);
}

export function toApiStatus(state: InstanceState): ApiStatus {
  switch (state) {
    case 'QUEUED':
    case 'LAUNCHING':
      return 'LAUNCHING';
    case 'RUNNING':
      return 'RUNNING';
    case 'FINISHED':
      return 'FINISHED';
    case 'FAILED':
    case 'STOPPED':
    case 'TIMED_OUT':
    case 'ABORTED':
      return 'FAILED';
    default:
      return state satisfies never;
  }
}

export function isInstanceState(value: string): value is InstanceState {
  return (INSTANCE_STATES as readonly string[]).includes(value);
}
