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
 *
 * Who moves what: every writer (the store's claim and reaper, the runner, recovery, shutdown, stop)
 * uses one of the named STATE_CHANGES below, whose source sets are derived from TRANSITIONS — no
 * other module lists states. How a run's end becomes a terminal state, message and failure reason
 * is decided once, by `settlementOf`.
 */
import { formatSeconds } from './execute-options.js';
import type { EngineFailureReason, FailureReason } from './failure-reason.js';

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
/** Claimed by a node (owner and lease recorded): the work may exist somewhere. */
export const CLAIMED_STATES = ['LAUNCHING', 'RUNNING'] as const;
export type ClaimedState = (typeof CLAIMED_STATES)[number];

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

/** One named state change: the target and the states it may start from (the guarded WHERE). */
export interface StateChange<To extends InstanceState = InstanceState> {
  readonly to: To;
  readonly from: readonly InstanceState[];
}

/** The sources of `to` in TRANSITIONS, kept to those in `within` (a named change's narrower scope). */
function change<To extends InstanceState>(
  to: To,
  within: readonly InstanceState[] = INSTANCE_STATES,
): StateChange<To> {
  const from = allowedSources(to).filter((state) => within.includes(state));
  // A named change the table does not allow is a programming error, caught when the module loads.
  if (from.length === 0) throw new Error(`no transition into ${to} from ${within.join(', ')}`);
  return { to, from };
}

/**
 * Every state change any writer makes, by name. The sets are derived from TRANSITIONS, so the
 * table stays the one place that decides which state may follow which.
 */
export const STATE_CHANGES = {
  /** The queue: a node takes a QUEUED instance (or inserts one already claimed). */
  claim: change('LAUNCHING', ['QUEUED']),
  /** The engine reported a handle: the work runs. */
  markRunning: change('RUNNING'),
  /** A stop request ends a queued instance before it starts. */
  stopQueued: change('STOPPED', ['QUEUED']),
  /** The server shuts down with a private store: its queued instances will never run. */
  abortOnShutdown: change('ABORTED', ['QUEUED']),
  /** Startup recovery: whatever this node left active when its previous process ended. */
  abortOnRecovery: change('ABORTED', ACTIVE_STATES),
  /** The lease reaper: a claimed instance whose node stopped renewing its lease. */
  reap: change('ABORTED', CLAIMED_STATES),
} as const satisfies Record<string, StateChange>;

/** Settling a claimed run in a terminal state: from the claimed states only (the work ran, or tried). */
export function settleChange<To extends TerminalState>(to: To): StateChange<To> {
  return change(to, CLAIMED_STATES);
}

/** Why the runner ended a run from outside the engine. */
export const END_CAUSES = ['stop', 'timeout', 'shutdown', 'fenced'] as const;
export type EndCause = (typeof END_CAUSES)[number];

/**
 * How a run ended, as the engine saw it (structurally the engine port's outcome, so the domain
 * needs no engine import). `reason` and `sqlState` are optional: engines that do not classify
 * their failures yet are classified here from the message (see `classifyFailure`).
 */
export type RunOutcome =
  | { readonly kind: 'succeeded'; readonly exitCode?: number | null | undefined }
  | {
      readonly kind: 'failed';
      readonly message: string;
      readonly exitCode?: number | null | undefined;
      readonly reason?: EngineFailureReason | undefined;
      readonly sqlState?: string | undefined;
    }
  | { readonly kind: 'aborted' };

/** The terminal state and the fields written with it in the one settling update. */
export interface Settlement {
  readonly state: TerminalState;
  readonly message: string;
  readonly exitCode: number | null;
  readonly failureReason: FailureReason | null;
  readonly sqlState: string | null;
}

export const STOPPED_MESSAGE = 'The script instance is stopped.';

const CAUSE_STATE = {
  stop: 'STOPPED',
  timeout: 'TIMED_OUT',
  shutdown: 'ABORTED',
  fenced: 'ABORTED',
} as const satisfies Record<EndCause, TerminalState>;

const CAUSE_REASON = {
  stop: 'stopped',
  timeout: 'timeout',
  shutdown: 'shutdown',
  fenced: 'fenced',
} as const satisfies Record<EndCause, FailureReason>;

export function endCauseMessage(cause: EndCause, timeoutMs: number): string {
  switch (cause) {
    case 'stop':
      return STOPPED_MESSAGE;
    case 'timeout':
      return `The script instance exceeded the timeout of ${formatSeconds(timeoutMs)} s and was ended.`;
    case 'shutdown':
      return 'The server shut down while the script instance was running; the run was ended.';
    case 'fenced':
      return 'The node running the script instance lost its lease (cut off from the store); the run was ended.';
    default:
      return cause satisfies never;
  }
}

/** The settlement of a run the runner ended (stop, timeout, shutdown, fencing). */
export function causeSettlement(cause: EndCause, timeoutMs: number): Settlement {
  return {
    state: CAUSE_STATE[cause],
    message: endCauseMessage(cause, timeoutMs),
    exitCode: null,
    failureReason: CAUSE_REASON[cause],
    sqlState: null,
  };
}

/**
 * The settlement of a run whose results could not be saved — too large to serialise, or the store
 * refused the row: the run still settles, without its results, and the message names the cause. A
 * run that finished becomes FAILED with `reason`; one that failed or that the runner ended (stop,
 * timeout, shutdown, fencing) keeps its state, reason and message, the cause appended: that is
 * still why it ended.
 */
export function unsavedResultsSettlement(
  settlement: Settlement,
  reason: Extract<FailureReason, 'output_limit' | 'engine_error'>,
  cause: string,
): Settlement {
  if (settlement.state === 'FINISHED') {
    return {
      ...settlement,
      state: 'FAILED',
      failureReason: reason,
      message: `The script's results could not be saved: ${cause}`,
    };
  }
  const message = settlement.message.trimEnd();
  const joined = message === '' || /[.!?]$/.test(message) ? message : `${message}.`;
  return { ...settlement, message: `${joined} Its results could not be saved: ${cause}`.trimStart() };
}

/**
 * Interim classification of an engine failure that carries no `reason`, from the wording the
 * engines use today; an engine that sets `reason` is taken at its word.
 */
export function classifyFailure(message: string): EngineFailureReason {
  if (/^Could not connect\b/i.test(message)) return 'connect_failed';
  if (/\bexceeds? the .* limit\b/i.test(message)) return 'output_limit';
  if (/\bconnection\b.*\bwas lost\b/i.test(message)) return 'session_lost';
  return 'script_error';
}

/**
 * The one mapping from (engine outcome, end cause) to the settlement: exhaustive over both.
 *  - succeeded: FINISHED whatever the cause (the work completed before a late stop could end it).
 *  - failed without a cause: FAILED with the engine's message and reason.
 *  - failed with a cause: the cause's state (a failure our own kill caused is the cause, not a
 *    script error), keeping the exit code / SQLSTATE the engine saw.
 *  - aborted: the cause's state; an abort nobody caused is counted as a stop.
 */
export function settlementOf(
  outcome: RunOutcome,
  cause: EndCause | undefined,
  timeoutMs: number,
): Settlement {
  switch (outcome.kind) {
    case 'succeeded':
      return {
        state: 'FINISHED',
        message: '',
        exitCode: outcome.exitCode ?? null,
        failureReason: null,
        sqlState: null,
      };
    case 'failed':
      if (cause) {
        return {
          ...causeSettlement(cause, timeoutMs),
          exitCode: outcome.exitCode ?? null,
          sqlState: outcome.sqlState ?? null,
        };
      }
      return {
        state: 'FAILED',
        message: outcome.message,
        exitCode: outcome.exitCode ?? null,
        failureReason: outcome.reason ?? classifyFailure(outcome.message),
        sqlState: outcome.sqlState ?? null,
      };
    case 'aborted':
      return causeSettlement(cause ?? 'stop', timeoutMs);
    default:
      return outcome satisfies never;
  }
}
