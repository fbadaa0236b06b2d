/**
 * Why a script instance did not finish, as a machine-readable reason beside the human message
 * (Temporal's failure taxonomy: "the script failed" is not "we failed", and a stop is not a timeout).
 * Stored with the instance (migration 0006) and exposed as `failureReason` next to
 * `detailedStatus`; null for FINISHED and for instances settled before reasons were stored.
 *
 *   script_error    the script itself failed: non-zero exit, SQL error (see `sqlState`/`exitCode`)
 *   output_limit    the script produced more output or rows than the configured cap
 *   connect_failed  the engine could not reach its target (database down, SSH refused, bad login)
 *   session_lost    the connection to the target dropped while the script ran
 *   engine_error    opendlf's engine broke (a bug or an environment problem, not the script)
 *   storage_full    the server's disk (or quota) was full: output.log, the run directory, the
 *                   DuckDB workspace files or the store could not be written (ENOSPC, SQLITE_FULL)
 *   timeout         the per-instance timeout ended the work
 *   stopped         a stop request ended the work
 *   node_lost       the node running it stopped renewing its lease; another node settled it
 *   shutdown        the server shut down (drain timeout passed, or it had not started yet)
 *   fenced          the node running it was cut off from the store and ended its own run
 *   restart         the server restarted while the instance was active (crash recovery)
 */
export const FAILURE_REASONS = [
  'script_error',
  'output_limit',
  'connect_failed',
  'session_lost',
  'engine_error',
  'storage_full',
  'timeout',
  'stopped',
  'node_lost',
  'shutdown',
  'fenced',
  'restart',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** The reasons an engine may report for its own `failed` outcome (the others are the runner's). */
export type EngineFailureReason = Extract<
  FailureReason,
  'script_error' | 'output_limit' | 'connect_failed' | 'session_lost' | 'engine_error' | 'storage_full'
>;

export function isFailureReason(value: string): value is FailureReason {
  return (FAILURE_REASONS as readonly string[]).includes(value);
}
