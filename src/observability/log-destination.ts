/**
 * Where the server's log lines go: stderr, asynchronously (pino's SonicBoom). Stderr is often a file
 * (`2>> opendlf.log`) on the disk that fills up, and SonicBoom then fails in two ways that would take
 * the server down with the disk: a write error is emitted as an 'error' event nobody handles (the
 * process dies), and the flush at exit retries the write forever (the process never exits). Here a
 * failed write is counted and retried with the next line, at most 16 MiB stay buffered (newer lines
 * are dropped past it), and the exit flush is skipped while the last write failed. Logging resumes
 * by itself once a write succeeds again.
 */
import pino from 'pino';

/** Buffered log bytes beyond which new lines are dropped (the destination cannot keep up or is failing). */
const MAX_BUFFERED_LOG_BYTES = 16 * 1024 * 1024;

export interface LogDestination {
  readonly stream: pino.DestinationStream;
  /** Log writes that failed since the start (e.g. ENOSPC on a full disk). */
  readonly failedWrites: () => number;
}

export function stderrLogDestination(fd = 2): LogDestination {
  const stream = pino.destination({ dest: fd, minLength: 0, maxLength: MAX_BUFFERED_LOG_BYTES });
  let failedWrites = 0;
  let failing = false;
  stream.on('error', () => {
    failedWrites += 1;
    failing = true;
  });
  stream.on('write', () => {
    failing = false;
  });
  const flushSync = stream.flushSync.bind(stream);
  stream.flushSync = () => {
    if (!failing) flushSync();
  };
  return { stream, failedWrites: () => failedWrites };
}
