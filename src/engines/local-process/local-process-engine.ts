/**
 * Runs Shell and PYTHON scripts as child processes on the server machine.
 *
 * Each run is spawned detached: its own session and process group, id = the leader's pid. The
 * instance owns that group: when the leader exits, anything it left running in the background is
 * ended too, and a stop ends the whole tree (see process-tree.ts for how members are found).
 * Output (stdout and stderr interleaved as they arrive) goes to `<runDir>/output.log`.
 */
import { execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunHandle } from '../../domain/instance.js';
import type { ScriptType } from '../../domain/script.js';
import type { Engine, EngineOutcome, EngineRunContext, EngineRunRequest } from '../engine.js';
import { formatBytes, OutputCapture, outputResult } from '../output-result.js';
import { processStartTicks, runMembers, terminateRun } from './process-tree.js';

export interface LocalProcessEngineOptions {
  /** Engine name persisted with instances, e.g. `local-shell`. */
  readonly name: string;
  readonly scriptTypes: readonly ScriptType[];
  /** Interpreter command, e.g. `bash` or `python3`; resolved through PATH. */
  readonly interpreter: string;
  readonly interpreterArgs: readonly string[];
  readonly scriptFileName: string;
  /** Extra environment for the child; the server's own OPENDLF_* variables are never passed on. */
  readonly env?: Readonly<Record<string, string>>;
}

function childEnvironment(extra: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('OPENDLF_')) env[key] = value;
  }
  return { ...env, ...extra };
}

export class LocalProcessEngine implements Engine {
  readonly name: string;
  readonly capabilities = { recoversOrphans: true, recoversFromAnyNode: false } as const;

  constructor(private readonly options: LocalProcessEngineOptions) {
    this.name = options.name;
  }

  supports(type: ScriptType): boolean {
    return this.options.scriptTypes.includes(type);
  }

  async run(request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome> {
    const { signal } = context;
    if (signal.aborted) return { kind: 'aborted', results: [] };
    await mkdir(request.runDir, { recursive: true });
    const scriptFile = join(request.runDir, this.options.scriptFileName);
    await writeFile(scriptFile, request.content, { mode: 0o600 });
    const log = createWriteStream(join(request.runDir, 'output.log'), { flags: 'w', mode: 0o600 });
    const capture = new OutputCapture(
      Math.min(request.limits.maxResultOutputBytes, request.limits.maxOutputBytes),
    );
    const started = performance.now();

    const child = spawn(this.options.interpreter, [...this.options.interpreterArgs, scriptFile], {
      cwd: request.runDir,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnvironment({
        ...this.options.env,
        OPENDLF_INSTANCE_ID: request.instanceId,
        OPENDLF_PROJECT_ID: request.namespace.projectId,
        OPENDLF_WORKSPACE: request.namespace.workspaceId,
      }),
    });

    let endReason: 'exit' | 'aborted' | 'output-limit' | undefined;
    let ladder: Promise<boolean> | undefined;
    const runId = child.pid;
    const endRun = (reason: 'aborted' | 'output-limit') => {
      endReason ??= reason;
      if (runId !== undefined) ladder ??= terminateRun(runId, context.stopGraceMs);
    };

    const onData = (chunk: Buffer) => {
      capture.add(chunk);
      if (capture.total > request.limits.maxOutputBytes) {
        endRun('output-limit');
        return;
      }
      log.write(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const streamsClosed = Promise.all([
      new Promise<void>((resolve) => child.stdout.once('close', resolve)),
      new Promise<void>((resolve) => child.stderr.once('close', resolve)),
    ]);

    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
      (resolve) => {
        child.once('exit', (code, sig) => resolve({ code, signal: sig }));
        child.once('error', (error) => resolve({ code: null, signal: null, error }));
      },
    );

    const onAbort = () => endRun('aborted');
    if (runId !== undefined) {
      const handle: RunHandle = {
        engine: this.name,
        runId,
        startTicks: processStartTicks(runId) ?? null,
      };
      await context.reportHandle(handle);
      // Stopped while launching: the handle exists only now, so the stop takes effect here.
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }

    const exit = await exited;
    signal.removeEventListener('abort', onAbort);
    // The instance owns its process group: whatever the leader left in the background ends with it.
    if (runId !== undefined && runMembers(runId).length > 0) {
      ladder ??= terminateRun(runId, context.stopGraceMs);
    }
    if (ladder) await ladder;
    // All writers are gone now, so the pipes close; the bound guards against a stuck descriptor
    // inherited by a process that escaped even the session (documented limitation).
    await Promise.race([streamsClosed, new Promise((r) => setTimeout(r, 2_000))]);
    await new Promise<void>((resolve) => log.end(resolve));

    const duration = (performance.now() - started) / 1000;
    const result = outputResult(capture.text, capture.truncated, duration, request.limits.maxResultRows);
    if (exit.error) {
      return {
        kind: 'failed',
        results: [],
        message: `Could not start ${this.options.interpreter}: ${exit.error.message}`,
      };
    }
    if (endReason === 'aborted') return { kind: 'aborted', results: [result] };
    if (endReason === 'output-limit') {
      return {
        kind: 'failed',
        results: [{ ...result, truncated: true }],
        message: `The script output exceeds the ${formatBytes(request.limits.maxOutputBytes)} limit; the run was ended.`,
        exitCode: exit.code,
      };
    }
    if (exit.code === 0) return { kind: 'succeeded', results: [result], exitCode: 0 };
    const how = exit.code !== null ? `exit code ${exit.code}` : `signal ${exit.signal ?? 'unknown'}`;
    const tail = capture.lastChars.trimEnd();
    return {
      kind: 'failed',
      results: [{ ...result, message: tail }],
      message: `The script failed with ${how}.${tail ? `\n${tail}` : ''}`,
      exitCode: exit.code,
    };
  }

  recover(handle: RunHandle): Promise<void> {
    const runId = typeof handle.runId === 'number' ? handle.runId : undefined;
    if (runId === undefined || runId <= 1) return Promise.resolve();
    const ticks = processStartTicks(runId);
    // The leader's pid now belongs to another process: whatever has this session id is not ours.
    if (ticks !== undefined && typeof handle.startTicks === 'number' && ticks !== handle.startTicks) {
      return Promise.resolve();
    }
    return terminateRun(runId, 1_000).then(() => undefined);
  }

  /** The interpreter starts (`--version`), within 5 s. */
  ping(): Promise<void> {
    return new Promise((resolve, reject) => {
      execFile(this.options.interpreter, ['--version'], { timeout: 5_000 }, (error) =>
        error
          ? reject(new Error(`${this.options.interpreter} cannot be started: ${error.message}`))
          : resolve(),
      );
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
