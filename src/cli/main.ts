/**
 * The `opendlf` command line. `opendlf serve` starts the service (what `npm start` runs).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, isLoopback, loadConfig, type ConfigOverrides } from '../config.js';
import { registerClientCommands } from './client/client-commands.js';
import { CliError, describeError, EXIT } from './client/cli-error.js';
import { ApiError } from '../client/api-client.js';
import { registerCredentialsCommand } from './credentials-command.js';

// libuv's pool is sized by bin/opendlf.js (CommonJS) before the pool starts. Started as an ES module
// (`node --import tsx src/cli/main.ts`), setting UV_THREADPOOL_SIZE here would be too late: such a
// process has the pool the environment gave it (libuv's default is 4).

function integer(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a non-negative integer');
  return Number(value);
}

/** Seconds may be fractional (`--lease-seconds 2.5`), as in the environment and the config file. */
function seconds(value: string): number {
  if (!/^\d+(\.\d+)?$/.test(value))
    throw new InvalidArgumentError('must be a non-negative number of seconds');
  return Number(value);
}

interface ServeOptions {
  host?: string;
  port?: number;
  dataDir?: string;
  config?: string;
  logLevel?: ConfigOverrides['logLevel'];
  maxConcurrentRuns?: number;
  stopGraceMs?: number;
  allowUnauthenticatedRemote?: boolean;
  auth?: ConfigOverrides['auth'];
  local?: boolean;
  store?: string;
  storeSchema?: string;
  nodeId?: string;
  leaseSeconds?: number;
  pollMs?: number;
  drainTimeoutSeconds?: number;
}

export function buildCli(): Command {
  const program = new Command('opendlf')
    .description(
      'Self-hosted DataArts Factory script service: scripts, executions and a stop that really stops.',
    )
    .showHelpAfterError()
    // Usage errors exit 2 (see main), like most Unix tools; commander's own default is 1.
    .exitOverride();

  program
    .command('serve')
    .description('Start the HTTP API (embedded default: SQLite store, DuckDB, local shell/python).')
    .option('--host <host>', 'address to bind (env OPENDLF_HOST)', undefined)
    .option('--port <port>', 'port to listen on; 0 picks a free port (env OPENDLF_PORT)', integer)
    .option('--data-dir <dir>', 'data directory (env OPENDLF_DATA_DIR)')
    .option('--config <file>', 'JSON config file (env OPENDLF_CONFIG)')
    .addOption(
      new Option('--log-level <level>', 'log level (env OPENDLF_LOG_LEVEL)').choices([
        'fatal',
        'error',
        'warn',
        'info',
        'debug',
        'trace',
        'silent',
      ]),
    )
    .option('--max-concurrent-runs <n>', 'instances run at once; the rest queue', integer)
    .option('--stop-grace-ms <ms>', 'SIGTERM to SIGKILL grace when stopping a run', integer)
    .option(
      '--store <url>',
      'postgres://… store shared by several nodes (env OPENDLF_STORE); default: SQLite in the data directory',
    )
    .option('--store-schema <name>', 'PostgreSQL schema holding the tables (env OPENDLF_STORE_SCHEMA)')
    .option('--node-id <id>', "this node's id (env OPENDLF_NODE_ID); default: kept in the data directory")
    .option(
      '--lease-seconds <s>',
      "claim lease: a lost node's instances are settled after it (default 30)",
      seconds,
    )
    .option(
      '--poll-ms <ms>',
      'store poll for work and stop requests, behind the signals (default 1000)',
      integer,
    )
    .option(
      '--drain-timeout-seconds <s>',
      'on SIGTERM, how long running instances may go on before they are stopped (default 20)',
      seconds,
    )
    .option('--no-local', 'disable the built-in `local` connection (Shell/PYTHON on this machine)')
    .option(
      '--allow-unauthenticated-remote',
      'allow binding a non-loopback address although no authentication is configured',
    )
    .addOption(
      new Option(
        '--auth <mode>',
        'auto: enforce authentication when credentials exist; none: start unauthenticated on a store ' +
          'that once enforced it (refused while credentials exist)',
      ).choices(['auto', 'none']),
    )
    .addHelpText(
      'after',
      '\nDefaults: host 127.0.0.1, port 8080, data dir ./data. Precedence: flags > env > config file > defaults.',
    )
    .action(async (options: ServeOptions) => {
      const overrides: ConfigOverrides = {
        host: options.host,
        port: options.port,
        dataDir: options.dataDir,
        logLevel: options.logLevel,
        maxConcurrentRuns: options.maxConcurrentRuns,
        stopGraceMs: options.stopGraceMs,
        store: options.store,
        storeSchema: options.storeSchema,
        nodeId: options.nodeId,
        leaseSeconds: options.leaseSeconds,
        pollMs: options.pollMs,
        drainTimeoutSeconds: options.drainTimeoutSeconds,
        ...(options.allowUnauthenticatedRemote ? { allowUnauthenticatedRemote: true } : {}),
        auth: options.auth,
        ...(options.local === false ? { localEngine: { enabled: false } } : {}),
      };
      const config = loadConfig({
        file: options.config ?? process.env.OPENDLF_CONFIG,
        env: process.env,
        overrides,
      });
      // Loaded here, not at the top: the client commands need none of the server's modules.
      const { startServer } = await import('../main.js');
      const server = await startServer(config);
      const auth =
        server.authMode === 'enforced'
          ? 'AK/SK signatures and tokens'
          : isLoopback(config.host)
            ? 'none, no credentials configured; loopback only'
            : 'NONE — unauthenticated and reachable from the network';
      const store = config.store === '' ? 'SQLite in the data directory' : 'PostgreSQL, shared';
      process.stdout.write(
        `opendlf listening on ${server.url} (auth: ${auth}; store: ${store}; node ${server.nodeId})\n`,
      );
      let signals = 0;
      const shutdown = (signal: NodeJS.Signals) => {
        signals += 1;
        if (signals > 1) process.exit(130); // A second Ctrl-C means "now".
        process.stderr.write(`opendlf: ${signal} received, shutting down\n`);
        server.close().then(
          () => process.exit(0),
          (error: unknown) => {
            process.stderr.write(`opendlf: shutdown failed: ${String(error)}\n`);
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', shutdown);
      process.on('SIGTERM', shutdown);
    });

  registerCredentialsCommand(program);
  registerClientCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (error) {
    // Commander has printed the usage error (or the help) already.
    if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : EXIT.usage);
    if (error instanceof CliError || error instanceof ApiError) {
      // exitCode, not exit(): stdout may still be draining into a pipe.
      const { exitCode, message } = describeError(error);
      process.stderr.write(`opendlf: ${message}\n`);
      process.exitCode = exitCode;
      return;
    }
    const message = error instanceof ConfigError ? error.message : String((error as Error).message ?? error);
    process.stderr.write(`opendlf: ${message}\n`);
    process.exit(1);
  }
}

const invokedDirectly = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) void main(process.argv);
