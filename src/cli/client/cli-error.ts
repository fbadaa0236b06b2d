/**
 * Exit codes of the client commands, which scripts may rely on (README "Command-line client"), and
 * the one error type that carries them to `main`, which prints its message on one line.
 */
import { ApiError } from '../../client/api-client.js';

export const EXIT = {
  ok: 0,
  /** A request failed: the server answered an error, or could not be reached. */
  requestFailed: 1,
  /** Bad arguments, an unknown profile, a missing project id, an unreadable file. */
  usage: 2,
  /** The instance ended FAILED (script error, stopped, timed out, aborted). */
  instanceFailed: 3,
  /** `--wait` with `--timeout`: the instance was still running when the time was up. */
  stillRunning: 4,
  /** Interrupted by Ctrl-C (128 + SIGINT), whether or not the instance was stopped. */
  interrupted: 130,
} as const;

export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** One line for any error a client command can meet. */
export function describeError(error: unknown): { exitCode: number; message: string } {
  if (error instanceof CliError) return { exitCode: error.exitCode, message: error.message };
  if (error instanceof ApiError) {
    const requestId = error.requestId === undefined ? '' : ` (request ${error.requestId})`;
    const text =
      error.status === 0
        ? `cannot reach the server: ${error.error_msg}`
        : `${error.error_code}: ${error.error_msg}${requestId}`;
    return { exitCode: EXIT.requestFailed, message: text.replace(/\s*\n\s*/g, ' ') };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { exitCode: EXIT.requestFailed, message: message.replace(/\s*\n\s*/g, ' ') };
}
