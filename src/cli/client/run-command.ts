/**
 * `opendlf run <script> [-p name=value]… [--wait]`: execute, and with `--wait` follow the instance
 * until it settles — a spinner with the elapsed time (terminals only), the live output of a
 * Shell/Python run, then the results. Ctrl-C while waiting asks whether to stop the instance (on a
 * terminal; without one it stops it, since nobody is left to ask) and exits 130 either way.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Ora } from 'ora';
import {
  ApiError,
  TERMINAL_STATUSES,
  type DlfApiClient,
  type InstanceResult,
} from '../../client/api-client.js';
import { CliError, EXIT } from './cli-error.js';
import { printInstanceResults, statusLine } from './instance-output.js';
import { canAnimate, note, paint, statusStyle, type OutputFormat } from './output.js';

export interface RunOptions {
  params: Record<string, string>;
  wait: boolean;
  /** Seconds to wait at most (`--timeout`); undefined waits until the instance settles. */
  timeoutSeconds?: number;
  idempotencyKey?: string;
  /** Follow a Shell/Python run's output while it runs (default true). */
  live: boolean;
  output: OutputFormat;
  statement?: number;
}

/** Script types whose output is a log that can be followed. */
const LOG_TYPES = new Set(['Shell', 'PYTHON', 'Spark Python', 'SparkPython']);
/**
 * Long-poll length per request: one request per settle when nothing else is followed; with live
 * output the log is read between polls, so the poll is short enough for output to feel live.
 */
const WAIT_POLL_SECONDS = 20;
const LIVE_POLL_SECONDS = 0.5;
/** Bytes per log read (the server's default page). */
const LOG_PAGE_BYTES = 64 * 1024;
/** The shortest time between two status requests, whatever the server does with `waitSeconds`. */
const MIN_POLL_INTERVAL_MS = 500;
/** How often the spinner's elapsed time is redrawn. */
const SPINNER_TICK_MS = 100;

const isTerminal = (instance: { status: string }) =>
  (TERMINAL_STATUSES as readonly string[]).includes(instance.status);

export async function runScript(client: DlfApiClient, name: string, options: RunOptions): Promise<void> {
  // The type decides whether there is output to follow; a missing script fails here with DLF.6201.
  const script = options.wait ? await client.getScript(name) : undefined;
  const started = Date.now();
  const executed = await client.executeScript(name, options.params, {
    idempotencyKey: options.idempotencyKey,
  });
  const instanceId = executed.instanceId;
  if (!options.wait) {
    if (options.output === 'json') process.stdout.write(`${JSON.stringify({ instanceId })}\n`);
    else process.stdout.write(`${instanceId}\n`);
    return;
  }

  const follower = new InstanceFollower(client, name, instanceId, started, {
    live: options.live && script !== undefined && LOG_TYPES.has(script.type) && options.output === 'table',
    timeoutSeconds: options.timeoutSeconds,
  });
  const instance = await follower.follow();
  printInstanceResults(instance, options.output, {
    statement: options.statement,
    outputAlreadyShown: follower.showedOutput,
  });
  finish(instanceId, instance);
}

/** Exit code and the status line of a settled instance: FAILED is exit 3 with a one-line message. */
export function finish(instanceId: string, instance: InstanceResult): void {
  if (instance.status === 'FAILED') {
    throw new CliError(EXIT.instanceFailed, `instance ${instanceId} ${statusLine(instance)}`);
  }
  note(paint(process.stderr, statusStyle(instance.status), `instance ${instanceId} ${statusLine(instance)}`));
}

class InstanceFollower {
  showedOutput = false;
  private logOffset = 0;
  private logAvailable: boolean;
  /** Output bytes written but not yet ended by a newline: held back while the spinner draws. */
  private partialLine = '';
  private endsWithNewline = true;
  private status = 'LAUNCHING';
  private spinner: Ora | undefined;

  constructor(
    private readonly client: DlfApiClient,
    private readonly name: string,
    private readonly instanceId: string,
    private readonly started: number,
    private readonly options: { live: boolean; timeoutSeconds?: number },
  ) {
    this.logAvailable = options.live;
  }

  async follow(): Promise<InstanceResult> {
    const interrupted = new AbortController();
    // `on`, not `once`: ora's signal-exit re-raises SIGINT when it finds no other listener left.
    // A second Ctrl-C while the stop is under way means "quit now".
    const onSignal = () => {
      if (!interrupted.signal.aborted) return interrupted.abort();
      process.stderr.write(
        `\nopendlf: interrupted again; instance ${this.instanceId} may still be running\n`,
      );
      process.exit(EXIT.interrupted);
    };
    process.on('SIGINT', onSignal);
    let ticker: NodeJS.Timeout | undefined;
    if (canAnimate(process.stderr)) {
      // discardStdin would put stdin in raw mode, where Ctrl-C is no longer a SIGINT.
      // Loaded here: only a wait on a terminal needs them (a CLI start stays short).
      const { default: ora } = await import('ora');
      this.spinner = ora({
        stream: process.stderr,
        discardStdin: false,
        // canAnimate above decided; ora's own guess (is-interactive) must not disagree with it.
        isEnabled: true,
        text: this.spinnerText(this.status),
      });
      this.spinner.start();
      // The elapsed time moves between polls too.
      ticker = setInterval(() => {
        if (this.spinner) this.spinner.text = this.spinnerText(this.status);
      }, SPINNER_TICK_MS);
    } else note(`instance ${this.instanceId} started`);
    try {
      return await this.poll(interrupted.signal);
    } catch (error) {
      if (!interrupted.signal.aborted) throw error;
      clearInterval(ticker);
      this.spinner?.stop();
      return await this.onInterrupt();
    } finally {
      process.removeListener('SIGINT', onSignal);
      clearInterval(ticker);
      this.spinner?.stop();
      this.flushPartialLine();
    }
  }

  private async poll(signal: AbortSignal): Promise<InstanceResult> {
    const deadline =
      this.options.timeoutSeconds === undefined
        ? undefined
        : this.started + this.options.timeoutSeconds * 1000;
    for (;;) {
      signal.throwIfAborted();
      const remaining = deadline === undefined ? Infinity : (deadline - Date.now()) / 1000;
      if (remaining <= 0) {
        throw new CliError(
          EXIT.stillRunning,
          `instance ${this.instanceId} still running after ${this.options.timeoutSeconds} s (opendlf stop ${this.name} ${this.instanceId})`,
        );
      }
      const waitSeconds = Math.min(
        this.logAvailable ? LIVE_POLL_SECONDS : WAIT_POLL_SECONDS,
        Math.max(remaining, 0.1),
      );
      const began = Date.now();
      const instance = await this.client.getInstance(this.name, this.instanceId, {
        waitSeconds: Math.round(waitSeconds * 1000) / 1000,
        signal,
      });
      this.status = instance.detailedStatus ?? instance.status;
      if (this.spinner) this.spinner.text = this.spinnerText(this.status);
      if (this.logAvailable) await this.readLog(signal, isTerminal(instance));
      if (isTerminal(instance)) return instance;
      // A server without the long poll (DataArts ignores waitSeconds) answers at once: pace the polls.
      const early = MIN_POLL_INTERVAL_MS - (Date.now() - began);
      if (early > 0) await sleep(early, undefined, { signal });
    }
  }

  /** Reads the log from the last offset; after the end, until the server says it is complete. */
  private async readLog(signal: AbortSignal, settled: boolean): Promise<void> {
    for (let reads = 0; this.logAvailable && reads < 1000; reads++) {
      let chunk;
      try {
        chunk = await this.client.getLog(
          this.name,
          this.instanceId,
          { offset: this.logOffset, limit: LOG_PAGE_BYTES },
          signal,
        );
      } catch (error) {
        // A server without the log extension (404), or a run without a log: fall back to the
        // output in the result.
        if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
          this.logAvailable = false;
          return;
        }
        throw error;
      }
      if (chunk.text !== '') this.writeOutput(chunk.text);
      const progressed = chunk.nextOffset > this.logOffset;
      this.logOffset = chunk.nextOffset;
      if (chunk.complete || !progressed || !settled) return;
    }
  }

  private writeOutput(text: string): void {
    this.showedOutput = true;
    if (!this.spinner) {
      process.stdout.write(text);
      this.endsWithNewline = text.endsWith('\n');
      return;
    }
    const combined = this.partialLine + text;
    const end = combined.lastIndexOf('\n');
    this.partialLine = combined.slice(end + 1);
    if (end < 0) return;
    this.spinner.clear();
    process.stdout.write(combined.slice(0, end + 1));
    this.spinner.render();
  }

  /** Ends the output with a newline, so what follows (results, the prompt) starts on its own line. */
  private flushPartialLine(): void {
    if (this.partialLine !== '') process.stdout.write(`${this.partialLine}\n`);
    else if (!this.endsWithNewline) process.stdout.write('\n');
    this.partialLine = '';
    this.endsWithNewline = true;
  }

  private spinnerText(status: string): string {
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1);
    return `${status} ${seconds}s  ${this.name} ${paint(process.stderr, 'dim', this.instanceId)}`;
  }

  /** Ctrl-C: ask (terminal) or decide (no terminal) whether to stop; exit 130 either way. */
  private async onInterrupt(): Promise<never> {
    this.flushPartialLine();
    const stopCommand = `opendlf stop ${this.name} ${this.instanceId}`;
    if (process.stdin.isTTY && process.stderr.isTTY) {
      // A second Ctrl-C at the prompt answers "cancel": leave the instance running.
      const { confirm, isCancel } = await import('@clack/prompts');
      const answer = await confirm({
        message: `Stop instance ${this.instanceId}?`,
        initialValue: true,
        output: process.stderr,
      });
      if (isCancel(answer) || !answer) {
        throw new CliError(
          EXIT.interrupted,
          `interrupted; instance ${this.instanceId} left running (${stopCommand})`,
        );
      }
    }
    note(`stopping instance ${this.instanceId}…`);
    await this.client.stopInstance(this.name, this.instanceId);
    const instance = await this.client.getInstance(this.name, this.instanceId);
    throw new CliError(EXIT.interrupted, `interrupted; instance ${this.instanceId} ${statusLine(instance)}`);
  }
}

/**
 * `opendlf log`: the output of a Shell/Python instance from the start — what there is so far, or
 * with `follow` until the instance settles and the log is complete.
 */
export async function printLog(
  client: DlfApiClient,
  name: string,
  instanceId: string,
  follow: boolean,
): Promise<void> {
  let offset = 0;
  let last = '\n';
  for (;;) {
    const chunk = await client.getLog(name, instanceId, { offset, limit: LOG_PAGE_BYTES });
    if (chunk.text !== '') {
      process.stdout.write(chunk.text);
      last = chunk.text;
    }
    const progressed = chunk.nextOffset > offset;
    offset = chunk.nextOffset;
    if (chunk.complete || (!progressed && !follow)) break;
    if (!progressed) {
      // Nothing new yet: wait on the instance (it settling completes the log), paced like `run`.
      const began = Date.now();
      await client.getInstance(name, instanceId, { waitSeconds: LIVE_POLL_SECONDS });
      const early = MIN_POLL_INTERVAL_MS - (Date.now() - began);
      if (early > 0) await sleep(early);
    }
  }
  if (!last.endsWith('\n') && process.stdout.isTTY) process.stdout.write('\n');
}
