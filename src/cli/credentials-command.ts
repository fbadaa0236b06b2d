/**
 * `opendlf credentials …`: manage the access keys and tokens a server on the same data directory
 * accepts. Non-interactive, for scripts and tests. Secrets are never printed back.
 */
import { Option, type Command } from 'commander';
import { CredentialDirectory, grantsFrom } from '../services/credential-directory.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface GrantOptions extends StoreOptions {
  project: string[];
  workspace?: string[];
  role?: string[];
  expires?: string;
}

function expiry(raw: string | undefined): Date | null {
  if (raw === undefined) return null;
  const date = new Date(raw);
  if (Number.isNaN(date.getTime())) throw new Error(`--expires must be an ISO date/time, got '${raw}'`);
  return date;
}

/** Where the credentials live: the data directory's SQLite store, or a shared PostgreSQL store. */
interface StoreOptions {
  dataDir: string;
  store: string;
  storeSchema: string;
}

async function withDirectory<T>(
  options: StoreOptions,
  work: (directory: CredentialDirectory) => Promise<T>,
): Promise<T> {
  // Loaded on use: the other commands (the API client's) need none of the server's modules.
  const { openDataDirectory } = await import('../main.js');
  const { store, cipher } = await openDataDirectory(options.dataDir, {
    store: options.store,
    storeSchema: options.storeSchema,
    storeMaxConnections: 2,
  });
  try {
    return await work(new CredentialDirectory(store.credentials, cipher));
  } finally {
    await store.close();
  }
}

/** The data directory (secret key) and the store, as `opendlf serve` takes them. */
function addStoreOptions(command: Command): Command {
  return command
    .addOption(new Option('--data-dir <dir>', 'data directory of the server').default('./data'))
    .addOption(
      new Option(
        '--store <url>',
        "postgres://… store shared by several nodes (default: the data directory's SQLite)",
      )
        .env('OPENDLF_STORE')
        .default(''),
    )
    .addOption(
      new Option('--store-schema <name>', 'PostgreSQL schema of the store')
        .env('OPENDLF_STORE_SCHEMA')
        .default(''),
    );
}

export function registerCredentialsCommand(program: Command): void {
  const credentials = program
    .command('credentials')
    .description('Manage the access keys (AK/SK) and tokens a server on this data directory accepts.');

  addStoreOptions(credentials.command('add'))
    .description('Add (or replace) an access key or a token with its projects and roles.')
    .option('--access-key <ak>', 'access key id (8-128 of A-Z a-z 0-9 _ -)')
    .option('--secret-key <sk>', 'secret key (at least 16 characters); use with --access-key')
    .option('--token <value>', 'a static token for X-Auth-Token (at least 16 characters)')
    .requiredOption('--project <id>', 'project id it may use (repeatable; * for all)', collect)
    .option(
      '--workspace <id>',
      'workspace of the matching --role (repeatable; omit for all workspaces)',
      collect,
    )
    .option(
      '--role <role>',
      'admin | developer | deployer | operator | viewer (repeatable, one per --workspace; none: admin everywhere)',
      collect,
    )
    .option('--expires <iso>', 'expiry, e.g. 2027-01-01T00:00:00Z')
    .action(async (options: GrantOptions & { accessKey?: string; secretKey?: string; token?: string }) => {
      const grants = grantsFrom(options.workspace ?? [], options.role ?? []);
      const expiresAt = expiry(options.expires);
      await withDirectory(options, async (directory) => {
        if (options.token !== undefined) {
          if (options.accessKey !== undefined)
            throw new Error('give either --access-key or --token, not both');
          const id = await directory.putToken({
            token: options.token,
            projects: options.project,
            grants,
            expiresAt,
          });
          process.stdout.write(`added token ${id}\n`);
          return;
        }
        if (options.accessKey === undefined || options.secretKey === undefined) {
          throw new Error('give --access-key with --secret-key, or --token');
        }
        await directory.putAccessKey({
          accessKey: options.accessKey,
          secretKey: options.secretKey,
          projects: options.project,
          grants,
          expiresAt,
        });
        process.stdout.write(`added access key ${options.accessKey}\n`);
      });
    });

  addStoreOptions(credentials.command('rotate'))
    .description('Give an existing access key a new secret key, keeping its projects and roles.')
    .requiredOption('--access-key <ak>', 'the access key to rotate')
    .requiredOption('--secret-key <sk>', 'the new secret key')
    .action(async (options: StoreOptions & { accessKey: string; secretKey: string }) => {
      await withDirectory(options, async (directory) => {
        const existing = (await directory.list()).find(
          (c) => c.kind === 'aksk' && c.id === options.accessKey && c.source === 'store',
        );
        if (!existing) throw new Error(`no stored access key ${options.accessKey}`);
        await directory.putAccessKey({
          accessKey: options.accessKey,
          secretKey: options.secretKey,
          projects: existing.projects,
          grants: existing.grants,
          expiresAt: existing.expiresAt ? new Date(existing.expiresAt) : null,
        });
        process.stdout.write(`rotated access key ${options.accessKey}\n`);
      });
    });

  addStoreOptions(credentials.command('remove'))
    .description('Remove an access key or a token (by the id `list` shows).')
    .option('--access-key <ak>', 'access key to remove')
    .option('--token-id <id>', 'token id to remove (tok-…)')
    .action(async (options: StoreOptions & { accessKey?: string; tokenId?: string }) => {
      await withDirectory(options, async (directory) => {
        const [kind, id] = options.accessKey
          ? (['aksk', options.accessKey] as const)
          : (['token', options.tokenId] as const);
        if (id === undefined) throw new Error('give --access-key or --token-id');
        if (!(await directory.remove(kind, id))) throw new Error(`no stored credential ${id}`);
        process.stdout.write(`removed ${id}\n`);
        if (!(await directory.credentialsExist())) {
          process.stderr.write(
            'opendlf: no credentials left in the store: unless the config file declares some, a running server ' +
              'now answers 401 to every call, and a restart without credentials needs --auth none\n',
          );
        }
      });
    });

  addStoreOptions(credentials.command('list'))
    .description('List credentials (never their secrets) as JSON lines.')
    .action(async (options: StoreOptions) => {
      await withDirectory(options, async (directory) => {
        for (const summary of await directory.list()) process.stdout.write(`${JSON.stringify(summary)}\n`);
      });
    });
}
