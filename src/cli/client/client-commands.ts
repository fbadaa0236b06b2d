/**
 * The client commands of `opendlf` (README "Command-line client"): scripts, runs, results, history,
 * connections, profiles and shell completion. They talk to a server only through the public API
 * (`src/client/api-client.ts`), so they work against any opendlf, and against DataArts where the
 * API allows.
 */
import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { Argument, InvalidArgumentError, Option, type Command } from 'commander';
import {
  ApiError,
  type Connection,
  type DlfApiClient,
  type InstanceSummary,
  type Script,
  type ScriptInput,
} from '../../client/api-client.js';
import { CliError, EXIT } from './cli-error.js';
import { completionScript } from './completion.js';
import { chooseStatement, printInstanceResults, statusLine } from './instance-output.js';
import { note, OUTPUT_FORMATS, paint, printRecords, type OutputFormat } from './output.js';
import { registerProfileCommands } from './profile-commands.js';
import { resolveSettings, type ConnectionFlags } from './profiles.js';
import { finish, printLog, runScript } from './run-command.js';

interface CommonFlags extends ConnectionFlags {
  output: OutputFormat;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('must be a positive integer');
  return Number(value);
}

function nonNegativeInteger(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a non-negative integer');
  return Number(value);
}

function positiveSeconds(value: string): number {
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0) {
    throw new InvalidArgumentError('must be a positive number of seconds');
  }
  return Number(value);
}

/** `name=value` pairs (`-p`, `--config`); the first `=` separates, the value may hold more. */
function pairs(values: readonly string[] | undefined, flag: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const item of values ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CliError(EXIT.usage, `${flag} expects name=value, got '${item}'`);
    result[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return result;
}

/** The flags that choose the server and the identity, on every client command. */
function withClientOptions(command: Command, formats: readonly string[] = OUTPUT_FORMATS): Command {
  return command
    .option('--profile <name>', 'profile from the profiles file (env OPENDLF_PROFILE)')
    .option('--endpoint <url>', 'server URL (env OPENDLF_ENDPOINT; default http://127.0.0.1:8080)')
    .option('--project <id>', 'project id (env OPENDLF_PROJECT_ID)')
    .option('--workspace <id>', 'workspace id, sent as the workspace header (env OPENDLF_WORKSPACE)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(formats).default('table'));
}

const clientOf = (flags: ConnectionFlags): DlfApiClient => resolveSettings(flags).client;

/** Script types by file extension, for `script push` without `--type`. */
const TYPE_BY_EXTENSION: Record<string, string> = { '.sh': 'Shell', '.py': 'PYTHON' };

export function registerClientCommands(program: Command): void {
  registerScriptCommands(program);
  registerRunCommands(program);
  registerConnectionCommands(program);
  registerProfileCommands(program);
  program
    .command('completion')
    .description('Print a shell completion script: eval "$(opendlf completion bash)"')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action((shell: 'bash' | 'zsh') => {
      process.stdout.write(completionScript(program, shell));
    });
}

// ---- scripts ----------------------------------------------------------------------------------------

const SCRIPT_COLUMNS = ['name', 'type', 'directory', 'connectionName', 'database', 'description'];
const scriptRow = (s: Script) => [s.name, s.type, s.directory, s.connectionName, s.database, s.description];

/** `/reports` holds `/reports` and everything below it. */
function inDirectory(script: Script, directory: string): boolean {
  const dir = `/${directory.replace(/^\/+|\/+$/g, '')}`;
  const own = script.directory ?? '/';
  return dir === '/' || own === dir || own.startsWith(`${dir}/`);
}

function registerScriptCommands(program: Command): void {
  const listAction = async (options: CommonFlags & { dir?: string; name?: string }) => {
    const scripts = (await clientOf(options).listAllScripts(options.name)).filter(
      (script) => options.dir === undefined || inDirectory(script, options.dir),
    );
    printRecords(options.output, SCRIPT_COLUMNS, scripts.map(scriptRow), scripts);
  };
  const addListOptions = (command: Command) =>
    withClientOptions(command)
      .option('--dir <directory>', 'only scripts in this directory and below')
      .option('--name <text>', 'only scripts whose name contains this text')
      .action(listAction);

  addListOptions(program.command('ls').description('List scripts (every page).'));

  const script = program.command('script').description('Create, update, show and delete scripts.');
  addListOptions(script.command('ls').description('List scripts (same as `opendlf ls`).'));

  withClientOptions(
    script
      .command('push')
      .description(
        'Create or update a script from a file (the name defaults to the file name without extension).',
      )
      .argument('<file>', 'the script content')
      .option('--name <name>', 'script name')
      .option(
        '--type <type>',
        'script type (DWSSQL, RDSSQL, Shell, PYTHON, …); .sh/.py files default to Shell/PYTHON',
      )
      .option('--connection <name>', 'connection name')
      .option('--database <name>', 'database')
      .option('--directory <dir>', 'directory in the script tree, e.g. /reports')
      .option('--description <text>', 'description')
      .option('--config <name=value>', 'configuration entry (repeatable)', collect),
  ).action(
    async (
      file: string,
      options: CommonFlags & {
        name?: string;
        type?: string;
        connection?: string;
        database?: string;
        directory?: string;
        description?: string;
        config?: string[];
      },
    ) => {
      let content: string;
      try {
        content = readFileSync(file, 'utf8');
      } catch (error) {
        throw new CliError(
          EXIT.usage,
          `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
        );
      }
      const name = options.name ?? basename(file, extname(file));
      const client = clientOf(options);
      const changes: Partial<ScriptInput> = {
        content,
        ...(options.type !== undefined ? { type: options.type } : {}),
        ...(options.connection !== undefined ? { connectionName: options.connection } : {}),
        ...(options.database !== undefined ? { database: options.database } : {}),
        ...(options.directory !== undefined ? { directory: options.directory } : {}),
        ...(options.description !== undefined ? { description: options.description } : {}),
        ...(options.config !== undefined ? { configuration: pairs(options.config, '--config') } : {}),
      };
      const outcome = await pushScript(client, name, changes, TYPE_BY_EXTENSION[extname(file)]);
      if (options.output === 'json') process.stdout.write(`${JSON.stringify({ name, action: outcome })}\n`);
      else note(`${outcome} script ${name}`);
    },
  );

  withClientOptions(
    script
      .command('get')
      .description('Print a script: its content (table), or the whole script (json).')
      .argument('<name>'),
  ).action(async (name: string, options: CommonFlags) => {
    const found = await clientOf(options).getScript(name);
    if (options.output === 'json') process.stdout.write(`${JSON.stringify(found, null, 2)}\n`);
    else if (options.output === 'csv') printRecords('csv', SCRIPT_COLUMNS, [scriptRow(found)], found);
    else process.stdout.write(found.content.endsWith('\n') ? found.content : `${found.content}\n`);
  });

  withClientOptions(
    script
      .command('rm')
      .description('Delete a script (its running instances are stopped first).')
      .argument('<name>'),
  ).action(async (name: string, options: CommonFlags) => {
    await clientOf(options).deleteScript(name);
    note(`deleted script ${name}`);
  });
}

/**
 * Update when the script exists (fields not given keep their values), else create. A create that
 * loses a race to another create (DLF.0202) becomes an update.
 */
async function pushScript(
  client: DlfApiClient,
  name: string,
  changes: Partial<ScriptInput>,
  typeFromExtension: string | undefined,
): Promise<'created' | 'updated'> {
  const update = async (existing: Script) => {
    const {
      id: _id,
      owner: _owner,
      version: _version,
      createUser: _createUser,
      approvalStatus: _a,
      ...fields
    } = existing;
    await client.updateScript(name, { ...fields, ...changes, name });
    return 'updated' as const;
  };
  let existing: Script | undefined;
  try {
    existing = await client.getScript(name);
  } catch (error) {
    if (!(error instanceof ApiError && error.error_code === 'DLF.6201')) throw error;
  }
  if (existing) return update(existing);
  const type = changes.type ?? typeFromExtension;
  if (type === undefined) {
    throw new CliError(
      EXIT.usage,
      `script ${name} does not exist yet: give its --type (DWSSQL, RDSSQL, Shell, PYTHON, …)`,
    );
  }
  try {
    await client.createScript({ ...changes, name, type, content: changes.content ?? '' });
    return 'created';
  } catch (error) {
    if (error instanceof ApiError && error.error_code === 'DLF.0202')
      return update(await client.getScript(name));
    throw error;
  }
}

// ---- runs -------------------------------------------------------------------------------------------

const HISTORY_COLUMNS = [
  'instanceId',
  'script',
  'status',
  'detailedStatus',
  'created',
  'ended',
  'startedBy',
  'stoppedBy',
  'message',
];

function historyRow(instance: InstanceSummary, scriptName: string | undefined): unknown[] {
  const message = instance.status === 'FAILED' ? (instance.message ?? '').split('\n')[0]?.slice(0, 80) : '';
  return [
    instance.instanceId,
    instance.scriptName ?? scriptName,
    instance.status,
    instance.detailedStatus,
    instance.createTime,
    instance.endTime,
    instance.startedBy,
    instance.stoppedBy,
    message,
  ];
}

function registerRunCommands(program: Command): void {
  withClientOptions(
    program
      .command('run')
      .description('Execute a script; with --wait follow it and print its results (exit 3 if it FAILED).')
      .argument('<script>')
      .option('-p, --param <name=value>', 'a ${name} parameter (repeatable)', collect)
      .option('-w, --wait', 'wait for the instance to settle and print its results')
      .option(
        '--timeout <seconds>',
        'with --wait: give up waiting after this long (exit 4; the run goes on)',
        positiveSeconds,
      )
      .option('--no-live', "with --wait: don't follow a Shell/Python run's output while it runs")
      .option('--statement <n>', 'with --wait: only statement n (from 1)', positiveInteger)
      .option('--idempotency-key <key>', 'a retried execute with the same key returns the first instance'),
  ).action(
    async (
      name: string,
      options: CommonFlags & {
        param?: string[];
        wait?: boolean;
        timeout?: number;
        live: boolean;
        statement?: number;
        idempotencyKey?: string;
      },
    ) => {
      await runScript(clientOf(options), name, {
        params: pairs(options.param, '--param'),
        wait: options.wait === true,
        timeoutSeconds: options.timeout,
        idempotencyKey: options.idempotencyKey,
        live: options.live,
        output: options.output,
        statement: options.statement,
      });
    },
  );

  withClientOptions(
    program
      .command('stop')
      .description(
        'Stop an instance (idempotent: a settled instance stays as it is); prints its final status.',
      )
      .argument('<script>')
      .argument('<instanceId>'),
  ).action(async (name: string, instanceId: string, options: CommonFlags) => {
    const client = clientOf(options);
    await client.stopInstance(name, instanceId);
    const instance = await client.getInstance(name, instanceId);
    if (options.output === 'json') process.stdout.write(`${JSON.stringify(instance, null, 2)}\n`);
    else process.stdout.write(`${instanceId} ${statusLine(instance)}\n`);
  });

  withClientOptions(
    program
      .command('status')
      .description('Show an instance: its status and results (exit 3 if it FAILED).')
      .argument('<script>')
      .argument('<instanceId>')
      .option('--wait <seconds>', 'wait up to this long (at most 60) for it to settle', positiveSeconds),
  ).action(async (name: string, instanceId: string, options: CommonFlags & { wait?: number }) => {
    const instance = await clientOf(options).getInstance(name, instanceId, { waitSeconds: options.wait });
    printInstanceResults(instance, options.output);
    if (instance.status === 'FINISHED' || instance.status === 'FAILED') finish(instanceId, instance);
    else note(`instance ${instanceId} ${statusLine(instance)}`);
  });

  withClientOptions(
    program
      .command('log')
      .description('Print the output of a Shell/Python instance (-f: follow it until the instance settles).')
      .argument('<script>')
      .argument('<instanceId>')
      .option('-f, --follow', 'keep printing new output until the instance settles'),
    ['table'],
  ).action(async (name: string, instanceId: string, options: CommonFlags & { follow?: boolean }) => {
    await printLog(clientOf(options), name, instanceId, options.follow === true);
  });

  withClientOptions(
    program
      .command('result')
      .description(
        'Print or export the results of a settled instance (CSV/JSON Lines: the whole result, streamed).',
      )
      .argument('<script>')
      .argument('<instanceId>')
      .option(
        '--statement <n>',
        'statement n (from 1); csv/jsonl need it when several statements return columns',
        positiveInteger,
      )
      .addOption(new Option('--format <format>', 'same as --output').choices([...OUTPUT_FORMATS, 'jsonl'])),
    [...OUTPUT_FORMATS, 'jsonl'],
  ).action(
    async (
      name: string,
      instanceId: string,
      options: Omit<CommonFlags, 'output'> & { output: string; format?: string; statement?: number },
    ) => {
      const format = options.format ?? options.output;
      const client = clientOf(options);
      const instance = await client.getInstance(name, instanceId);
      if (instance.status !== 'FINISHED' && instance.status !== 'FAILED') {
        throw new CliError(
          EXIT.requestFailed,
          `instance ${instanceId} has not settled yet (${statusLine(instance)})`,
        );
      }
      if (format === 'csv' || format === 'jsonl') {
        const index = chooseStatement(instance, options.statement);
        if (await streamExport(client, name, instanceId, index, format)) return;
        if (format === 'jsonl') {
          for (const row of instance.results[index]?.rows ?? [])
            process.stdout.write(`${JSON.stringify(row)}\n`);
          return;
        }
      }
      printInstanceResults(instance, format as OutputFormat, { statement: options.statement });
    },
  );

  withClientOptions(
    program
      .command('history')
      .description('Run history, newest first: of one script, or of the workspace without <script>.')
      .argument('[script]')
      .option('--status <list>', 'comma list of statuses (LAUNCHING, RUNNING, FINISHED, FAILED)')
      .option('--detailed-status <list>', 'comma list of detailed statuses (STOPPED, TIMED_OUT, …)')
      .option('--from <time>', 'created at or after (ISO-8601)')
      .option('--to <time>', 'created before (ISO-8601)')
      .option('--limit <n>', 'at most n instances (1-1000, default 10)', positiveInteger)
      .option('--offset <n>', 'skip the n newest', nonNegativeInteger),
  ).action(
    async (
      name: string | undefined,
      options: CommonFlags & {
        status?: string;
        detailedStatus?: string;
        from?: string;
        to?: string;
        limit?: number;
        offset?: number;
      },
    ) => {
      const query = {
        status: options.status?.split(','),
        detailedStatus: options.detailedStatus?.split(','),
        from: options.from,
        to: options.to,
        limit: options.limit,
        offset: options.offset,
      };
      const client = clientOf(options);
      const page =
        name === undefined
          ? await client.listInstances(query)
          : await client.listScriptInstances(name, query);
      printRecords(
        options.output,
        HISTORY_COLUMNS,
        page.instances.map((i) => historyRow(i, name)),
        page,
      );
      if (options.output === 'table' && page.total > page.instances.length) {
        note(
          paint(process.stderr, 'dim', `${page.instances.length} of ${page.total}; see --limit and --offset`),
        );
      }
    },
  );
}

/**
 * Streams the server's whole-result export to stdout; false when the server has no such endpoint
 * (an older opendlf, DataArts) so the caller falls back to the inline rows.
 */
async function streamExport(
  client: DlfApiClient,
  name: string,
  instanceId: string,
  index: number,
  format: 'csv' | 'jsonl',
): Promise<boolean> {
  let response: Response;
  try {
    response = await client.downloadResult(name, instanceId, index, format);
  } catch (error) {
    if (error instanceof ApiError && error.error_code === 'APIGW.0101') return false;
    throw error;
  }
  if (!response.body) return true;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    if (!process.stdout.write(chunk)) await new Promise((resolve) => process.stdout.once('drain', resolve));
  }
  return true;
}

// ---- connections ------------------------------------------------------------------------------------

const CONNECTION_COLUMNS = ['name', 'type', 'address', 'database', 'description'];
function connectionRow(connection: Connection): unknown[] {
  const { ip, port, database } = connection.config;
  const address =
    ip === undefined ? '' : port === undefined || port === '' ? String(ip) : `${String(ip)}:${String(port)}`;
  return [connection.name, connection.type, address, database, connection.description];
}

function registerConnectionCommands(program: Command): void {
  const connection = program.command('connection').description('Data connections: list, show, test.');
  withClientOptions(
    connection
      .command('ls')
      .description('List connections (secrets are never shown).')
      .option('--name <text>', 'only connections whose name contains this text'),
  ).action(async (options: CommonFlags & { name?: string }) => {
    const page = await clientOf(options).listConnections({
      limit: 1000,
      connectionName: options.name,
      includeExtensionTypes: true,
    });
    printRecords(options.output, CONNECTION_COLUMNS, page.connections.map(connectionRow), page);
  });

  withClientOptions(
    connection.command('get').description('Show a connection (secrets masked).').argument('<name>'),
  ).action(async (name: string, options: CommonFlags) => {
    const found = await clientOf(options).getConnection(name);
    const rows = [
      ['name', found.name],
      ['type', found.type],
      ['description', found.description ?? ''],
      ...Object.entries(found.config).map(([key, value]) => [`config.${key}`, value]),
    ];
    printRecords(options.output, ['field', 'value'], rows, found);
  });

  withClientOptions(
    connection
      .command('test')
      .description('Connect to the target and run the smallest script (needs the right to edit connections).')
      .argument('<name>'),
  ).action(async (name: string, options: CommonFlags) => {
    await clientOf(options).testConnection(name);
    if (options.output === 'json') process.stdout.write(`${JSON.stringify({ name, ok: true })}\n`);
    else process.stdout.write(`${name}: ${paint(process.stdout, 'green', 'ok')}\n`);
  });
}
