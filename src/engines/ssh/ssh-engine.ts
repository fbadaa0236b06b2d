/**
 * Runs Shell and PYTHON scripts on a remote host over SSH, with a stop that really ends them.
 *
 * Connections are kept open between runs (ssh-pool.ts); a run is one exec channel on one of them.
 * On that channel the script travels on stdin into a private `mktemp -d` directory (its content is
 * never part of a command), then the channel's login shell — which sshd made the leader of a new
 * session and process group — execs the interpreter: the script runs in its own session and
 * process group on the remote host, whose id is printed before the exec. Closing an SSH channel
 * does not end a remote process, and `signal()` is ignored for root logins, so a stop runs
 * `kill -TERM` / `kill -KILL` against that group over a second exec channel — on the run's
 * connection while it lives, otherwise on another one (see remote-commands.ts for the ladder). As
 * with the local engine the instance owns its group: whatever the leader leaves behind is ended
 * when it exits, before the outcome is reported, by a check sent to the shell the pool keeps open
 * on the connection (no channel to open, no process to start when nothing is left); the remote
 * directory is removed and the session swept right after, in the background.
 *
 * Output (stdout and stderr interleaved as they arrive) goes to `<runDir>/output.log` and into the
 * same Result shape and limits as the local engine. Connect failures, authentication failures,
 * host key mismatches and a connection lost mid-run end the run FAILED with a message; `run` only
 * rejects if the supervisor's `reportHandle` does.
 */
import { constants } from 'node:os';
import type { Client, ClientChannel } from 'ssh2';
import type { RunHandle } from '../../domain/instance.js';
import type { ScriptType } from '../../domain/script.js';
import type { Engine, EngineOutcome, EngineRunContext, EngineRunRequest } from '../engine.js';
import { ProcessOutput } from '../process-output.js';
import {
  afterExitCommand,
  DIR_MARKER,
  GROUP_GONE,
  GROUP_NOT_OURS,
  isRemoteRunDir,
  PGID_MARKER,
  runScriptCommand,
  stopGroupCommand,
} from './remote-commands.js';
import { openExecChannel, runCommand, type SshConnectError } from './ssh-connection.js';
import { SshConnectionPool, type Lease, type SshPoolOptions } from './ssh-pool.js';
import { describeTarget, type SshTarget } from './ssh-target.js';

export type { HostKeyPolicy } from './known-hosts.js';
export type { SshTarget } from './ssh-target.js';

export interface SshEngineOptions {
  /** Python interpreter on the remote host (a command name or an absolute path). Default `python3`. */
  readonly python?: string;
  /** How connections are kept between runs (defaults in ssh-pool.ts). */
  readonly pool?: SshPoolOptions;
}

/** After the kill, how long trailing output may take to arrive before the channel is closed by us. */
const CHANNEL_DRAIN_MS = 2_000;
/** The ladder's SIGKILL phase polls up to 5 s on the remote; this adds round trips and a login. */
const LADDER_SLACK_MS = 15_000;
/** Bytes of login-shell output tolerated before the directory and group lines (e.g. a chatty ~/.bashrc). */
const PREAMBLE_KEEP_BYTES = 64 * 1024;

type RunEnding =
  | {
      readonly kind: 'not-started';
      readonly message: string;
      readonly reason: 'connect_failed' | 'engine_error';
    }
  | { readonly kind: 'exited'; readonly code: number | null; readonly signal: string | null }
  | { readonly kind: 'aborted'; readonly confirmed: boolean; readonly pgid?: number }
  | { readonly kind: 'output-limit'; readonly code: number | null }
  | { readonly kind: 'lost'; readonly reason: string; readonly pgid: number; readonly groupGone: boolean };

/** The server refused (or could not open) the run's exec channel: nothing was started. */
class ChannelRefused extends Error {}

/**
 * The script's exit status as a shell reports it: the leader is the interpreter itself, so a
 * signal arrives as exit-signal (ssh2: no code, a name such as `SIGTERM`) and reads as 128+N.
 */
function exitStatus(code: number | null, signalName: string | undefined) {
  if (code !== null || signalName === undefined) return { code, signal: signalName ?? null };
  const name = signalName.startsWith('SIG') ? signalName : `SIG${signalName}`;
  const number = (constants.signals as Record<string, number | undefined>)[name];
  return number !== undefined ? { code: 128 + number, signal: null } : { code: null, signal: signalName };
}

const waitAtMost = (promise: Promise<unknown>, ms: number) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    void promise.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });

export class SshEngine implements Engine {
  readonly capabilities = { recoversFromAnyNode: true } as const;
  /** Connections kept open between runs (ssh-pool.ts). */
  private readonly pool: SshConnectionPool;
  private closed = false;

  constructor(
    readonly name: string,
    private readonly target: SshTarget,
    private readonly options: SshEngineOptions = {},
  ) {
    this.pool = new SshConnectionPool(options.pool);
  }

  readonly connectionProbe = { scriptType: 'Shell', content: 'exit 0' } as const;

  supports(type: ScriptType): boolean {
    return type === 'Shell' || type === 'PYTHON';
  }

  async run(request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome> {
    if (context.signal.aborted) return { kind: 'aborted', results: [] };
    const output = await ProcessOutput.open(request, context.onOutput);
    let ending: RunEnding;
    try {
      ending = await this.execute(request, context, output);
    } finally {
      await output.close();
    }
    const result = output.result();
    const tail = output.tail;
    const where = describeTarget(this.target);
    switch (ending.kind) {
      case 'not-started':
        return { kind: 'failed', results: [], message: ending.message, reason: ending.reason };
      case 'aborted':
        if (!ending.confirmed && ending.pgid !== undefined) {
          result.message = `The stop could not be confirmed on ${where}: remote process group ${ending.pgid} may still be running.`;
        }
        return { kind: 'aborted', results: output.total > 0 || ending.pgid !== undefined ? [result] : [] };
      case 'output-limit':
        return {
          kind: 'failed',
          results: [result],
          message: output.problemMessage(),
          reason: output.problemReason(),
          exitCode: ending.code,
        };
      case 'lost': {
        const aftermath = ending.groupGone
          ? `its remote process group ${ending.pgid} was ended over a new connection`
          : `its remote process group ${ending.pgid} may still be running (the host could not be reached to end it)`;
        return {
          kind: 'failed',
          results: [{ ...result, message: tail }],
          message: `The SSH connection to ${where} was lost while the script was running (${ending.reason}); ${aftermath}.`,
          reason: 'session_lost',
        };
      }
      case 'exited': {
        if (ending.code === 0) return { kind: 'succeeded', results: [result] };
        const how =
          ending.code !== null ? `exit code ${ending.code}` : `signal ${ending.signal ?? 'unknown'}`;
        return {
          kind: 'failed',
          results: [{ ...result, message: tail }],
          message: `The script failed with ${how}.${tail ? `\n${tail}` : ''}`,
          reason: 'script_error',
          exitCode: ending.code,
        };
      }
      default:
        return ending satisfies never;
    }
  }

  private async execute(
    request: EngineRunRequest,
    context: EngineRunContext,
    output: ProcessOutput,
  ): Promise<RunEnding> {
    // A pooled connection may have died unnoticed, or the server may refuse one more channel on
    // it (MaxSessions): the script never started then, so it is tried once more on a new connection.
    for (let attempt = 0; ; attempt++) {
      if (this.closed) {
        return {
          kind: 'not-started',
          message: `The SSH engine ${this.name} is closed.`,
          reason: 'engine_error',
        };
      }
      let lease: Lease;
      try {
        lease = await this.pool.acquire(this.target, context.signal, attempt > 0);
      } catch (error) {
        const connectError = error as SshConnectError;
        if (connectError.aborted) return { kind: 'aborted', confirmed: true };
        return { kind: 'not-started', message: connectError.message, reason: 'connect_failed' };
      }
      try {
        return await this.executeOn(lease, request, context, output);
      } catch (error) {
        if (!(error instanceof ChannelRefused)) throw error;
        lease.retire();
        if (attempt >= 1) return { kind: 'not-started', message: error.message, reason: 'connect_failed' };
      } finally {
        lease.release();
      }
    }
  }

  private async executeOn(
    lease: Lease,
    request: EngineRunRequest,
    context: EngineRunContext,
    output: ProcessOutput,
  ): Promise<RunEnding> {
    const { signal, stopGraceMs } = context;
    const where = describeTarget(this.target);
    const liveLease = () => (lease.isOpen() ? lease : undefined);

    // 1. One channel: the content goes on stdin (never into a command line) to the shell or
    //    `cat`, and the channel's shell becomes the script (see runScriptCommand).
    const python = request.scriptType === 'PYTHON';
    const fileName = python ? 'script.py' : 'script.sh';
    const interpreter = python ? [this.options.python ?? 'python3', '-u'] : ['bash'];
    const command = runScriptCommand(
      fileName,
      interpreter,
      {
        OPENDLF_INSTANCE_ID: request.instanceId,
        OPENDLF_PROJECT_ID: request.namespace.projectId,
        OPENDLF_WORKSPACE: request.namespace.workspaceId,
        ...(python ? { PYTHONUNBUFFERED: '1' } : {}),
      },
      request.content,
      lease.takeRunDir(),
    );

    let dir: string | undefined;
    let pgid: number | undefined;
    let startTicks: number | null = null;
    let preamble = Buffer.alloc(0);
    let markStarted!: () => void;
    const leaderKnown = new Promise<void>((resolve) => (markStarted = resolve));

    let endReason: 'aborted' | 'output-limit' | undefined;
    let ladder: Promise<boolean> | undefined;
    let markLadderDone!: () => void;
    const ladderDone = new Promise<void>((resolve) => (markLadderDone = resolve));
    const endRun = (reason: 'aborted' | 'output-limit') => {
      endReason ??= reason;
      if (pgid === undefined || ladder) return;
      // No exit status yet: the script, or the clean-up of its last milliseconds, is still running,
      // so the number is still its group's (pids are handed out in sequence, not reused within
      // milliseconds). Signal it at once over the kept shell; the ladder confirms and escalates.
      if (exit === undefined) lease.terminateGroup(pgid);
      ladder = this.stopGroup(liveLease(), this.target, pgid, startTicks, stopGraceMs, undefined);
      void ladder.then(markLadderDone);
    };

    // Past the limit, or output.log failed: the run ends (the kind names the limit, the message says which).
    output.onEnded(() => endRun('output-limit'));
    const onOutput = (chunk: Buffer) => output.add(chunk);
    // stdout: login-shell talk, the directory line, then the script's output (see runScriptCommand).
    let outputStarted = false;
    const onData = (chunk: Buffer) => {
      if (outputStarted) {
        onOutput(chunk);
        return;
      }
      preamble = Buffer.concat([preamble, chunk]);
      // latin1 maps bytes 1:1 to characters, so string indexes are byte offsets.
      const match = new RegExp(`(?:^|\\n)${DIR_MARKER}([^\\n]*)\\n`).exec(preamble.toString('latin1'));
      if (!match) {
        if (preamble.length > PREAMBLE_KEEP_BYTES) preamble = preamble.subarray(-1024);
        return;
      }
      outputStarted = true;
      const path = Buffer.from(match[1] ?? '', 'latin1').toString('utf8');
      if (isRemoteRunDir(path)) dir = path;
      const rest = preamble.subarray(match.index + match[0].length);
      preamble = Buffer.alloc(0);
      if (rest.length > 0) onOutput(rest);
    };
    // stderr: the group line, then only messages of the shell (the script's stderr is on stdout).
    let sidePreamble = Buffer.alloc(0);
    const onSideErr = (chunk: Buffer) => {
      if (pgid !== undefined) return;
      sidePreamble = Buffer.concat([sidePreamble, chunk]);
      const match = new RegExp(`(?:^|\\n)${PGID_MARKER}(\\d+) ?(\\d*)\\n`).exec(
        sidePreamble.toString('latin1'),
      );
      if (!match) {
        if (sidePreamble.length > PREAMBLE_KEEP_BYTES) sidePreamble = sidePreamble.subarray(-1024);
        return;
      }
      pgid = Number(match[1]);
      startTicks = match[2] ? Number(match[2]) : null;
      sidePreamble = Buffer.alloc(0);
      markStarted();
    };

    let exit: { code: number | null; signal: string | null } | undefined;
    let exited!: Promise<void>;
    let channelClosed!: Promise<void>;
    let channel: ClientChannel;
    try {
      // Listeners go on inside the reply callback: see openExecChannel for the 'exit' they would miss.
      channel = await openExecChannel(lease.client, command, (opened) => {
        opened.on('data', onData);
        opened.stderr.on('data', onSideErr);
        exited = new Promise<void>((resolve) =>
          opened.once('exit', (code: number | null, exitSignal?: string) => {
            exit = exitStatus(code ?? null, exitSignal);
            resolve();
          }),
        );
        channelClosed = new Promise<void>((resolve) => opened.once('close', () => resolve()));
      });
    } catch (error) {
      throw new ChannelRefused(`Could not start the script on ${where}: ${(error as Error).message}`);
    }
    channel.end(request.content);
    const ended = Promise.race([exited, channelClosed, lease.closed]);

    let onEarlyAbort: (() => void) | undefined;
    const abortedEarly = new Promise<void>((resolve) => {
      onEarlyAbort = () => resolve();
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', onEarlyAbort, { once: true });
    });
    await Promise.race([leaderKnown, ended, abortedEarly]);
    if (onEarlyAbort) signal.removeEventListener('abort', onEarlyAbort);
    // The exit can overtake the last data events, and a stop may come just before the pgid line:
    // give the line a moment before deciding the script never started.
    if (pgid === undefined) await waitAtMost(Promise.race([leaderKnown, channelClosed]), CHANNEL_DRAIN_MS);
    if (pgid === undefined) {
      channel.close();
      // The shell removes the directory itself only when the copy failed.
      if (dir !== undefined) {
        await this.stopGroup(liveLease(), this.target, undefined, null, 0, dir);
      }
      if (signal.aborted) return { kind: 'aborted', confirmed: true };
      const said = Buffer.concat([sidePreamble, preamble]).toString('utf8').trim();
      const why =
        said ||
        (lease.isOpen()
          ? `exit code ${String(exit?.code ?? null)}`
          : `the connection was lost (${lease.lostReason() ?? 'closed'})`);
      return {
        kind: 'not-started',
        // The host took the connection but could not take or start the script (its disk, its shell).
        reason: 'engine_error',
        message:
          dir === undefined
            ? `Could not copy the script to ${where}: ${why}`
            : `Could not start the script on ${where}: ${why}`,
      };
    }
    const runPgid = pgid;

    // 2. Running: the supervisor persists the handle, then a stop can take effect.
    const handle: RunHandle = {
      engine: this.name,
      host: this.target.host,
      port: this.target.port,
      username: this.target.username,
      pgid: runPgid,
      startTicks,
      ...(dir !== undefined ? { dir } : {}),
    };
    try {
      await context.reportHandle(handle);
    } catch (error) {
      await this.stopGroup(liveLease(), this.target, runPgid, startTicks, stopGraceMs, dir);
      throw error;
    }
    const onAbort = () => endRun('aborted');
    // output.log may have failed before the group was known: end the run now that it is.
    if (output.ended) endRun('output-limit');
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    // A stopped leader exits and ends the channel; one stuck in uninterruptible sleep must not hang the run.
    await Promise.race([ended, ladderDone.then(() => waitAtMost(ended, CHANNEL_DRAIN_MS))]);
    signal.removeEventListener('abort', onAbort);

    // 3. Ending: once the leader exited, the kept shell ends what it left in its group (and then
    //    removes the directory). Without an exit status (connection lost, leader stuck), or when
    //    the kept shell cannot answer, the ladder runs over an exec channel — on the run's
    //    connection if it survived, otherwise on a new one.
    const stopped = ladder ? await ladder : false;
    const leftGone =
      exit !== undefined
        ? await this.afterExit(lease, runPgid, startTicks, stopGraceMs, dir, stopped)
        : undefined;
    const groupGone =
      leftGone ?? (await this.stopGroup(liveLease(), this.target, runPgid, startTicks, stopGraceMs, dir));
    await waitAtMost(channelClosed, CHANNEL_DRAIN_MS);
    if (lease.isOpen()) channel.close();

    if (endReason === 'aborted') return { kind: 'aborted', confirmed: stopped || groupGone, pgid: runPgid };
    if (endReason === 'output-limit') return { kind: 'output-limit', code: exit?.code ?? null };
    if (exit === undefined) {
      const reason = lease.isOpen()
        ? 'the SSH session ended without an exit status'
        : (lease.lostReason() ?? 'the connection closed unexpectedly');
      return { kind: 'lost', reason, pgid: runPgid, groupGone };
    }
    return { kind: 'exited', code: exit.code, signal: exit.signal };
  }

  /**
   * After the leader's exit: ends what is left of its group through the connection's kept shell
   * (see afterExitCommand; `groupGone` when a stop ladder already confirmed it); true when nothing
   * is left, false when something survived SIGKILL, undefined when the kept shell did not answer
   * (the caller falls back to an exec channel).
   */
  private async afterExit(
    lease: Lease,
    pgid: number,
    startTicks: number | null,
    graceMs: number,
    dir: string | undefined,
    groupGone: boolean,
  ): Promise<boolean | undefined> {
    if (!lease.isOpen()) return undefined;
    const verdict = await lease.askKeptShell(
      (token) => afterExitCommand(token, pgid, startTicks, graceMs, dir, groupGone),
      graceMs + LADDER_SLACK_MS,
    );
    if (verdict === undefined) return undefined;
    return verdict === GROUP_GONE || verdict === GROUP_NOT_OURS;
  }

  /**
   * Runs the stop ladder for `pgid` (and removes `dir`) on the remote host; true when nothing of
   * the group is left. Uses the run's `lease` while its connection is open, else a pooled (or new)
   * connection to `target`. Never rejects.
   */
  private async stopGroup(
    lease: Lease | undefined,
    target: SshTarget,
    pgid: number | undefined,
    startTicks: number | null,
    graceMs: number,
    dir: string | undefined,
  ): Promise<boolean> {
    const command = stopGroupCommand(pgid, startTicks, graceMs, dir);
    const attempt = async (on: Client): Promise<boolean> => {
      const result = await runCommand(on, command, { timeoutMs: graceMs + LADDER_SLACK_MS });
      if (result.code === null) throw new Error('the connection was lost during the stop');
      return (
        pgid === undefined || result.stdout.includes(GROUP_GONE) || result.stdout.includes(GROUP_NOT_OURS)
      );
    };
    if (lease) {
      try {
        return await attempt(lease.client);
      } catch {
        // The run's connection died under us (or the ladder timed out): never share it again,
        // and fall through to another connection.
        lease.retire();
      }
    }
    if (this.closed) return false;
    let other: Lease;
    try {
      other = await this.pool.acquire(target, undefined, lease !== undefined);
    } catch {
      return false;
    }
    try {
      return await attempt(other.client);
    } catch {
      other.retire();
      return false;
    } finally {
      other.release();
    }
  }

  async recover(handle: RunHandle): Promise<void> {
    const pgid = typeof handle.pgid === 'number' ? handle.pgid : undefined;
    if (pgid === undefined || pgid <= 1) return;
    const target: SshTarget = {
      ...this.target,
      host: typeof handle.host === 'string' ? handle.host : this.target.host,
      port: typeof handle.port === 'number' ? handle.port : this.target.port,
      username: typeof handle.username === 'string' ? handle.username : this.target.username,
    };
    const startTicks = typeof handle.startTicks === 'number' ? handle.startTicks : null;
    const dir = typeof handle.dir === 'string' ? handle.dir : undefined;
    await this.stopGroup(undefined, target, pgid, startTicks, 1_000, dir);
  }

  close(): Promise<void> {
    this.closed = true;
    return this.pool.close();
  }
}
