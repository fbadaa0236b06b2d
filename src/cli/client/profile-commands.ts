/**
 * `opendlf profile ls|set|use|rm`: the profiles file (`profiles.ts`) from the command line. Secrets
 * are written, never printed.
 */
import { Option, type Command } from 'commander';
import { CliError, EXIT } from './cli-error.js';
import { note, OUTPUT_FORMATS, printRecords, type OutputFormat } from './output.js';
import { profilesPath, readProfiles, validateProfileName, writeProfiles, type Profile } from './profiles.js';

export function registerProfileCommands(program: Command): void {
  const profile = program
    .command('profile')
    .description(`Profiles (endpoint, project, workspace, credentials) in ${profilesPath()}.`);

  profile
    .command('ls')
    .description('List profiles (secrets are never shown).')
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table'))
    .action((options: { output: OutputFormat }) => {
      const file = readProfiles(profilesPath());
      const rows = Object.entries(file.profiles).map(([name, p]) => [
        name === file.default ? `${name} *` : name,
        p.endpoint,
        p.projectId,
        p.workspace,
        p.accessKey !== undefined ? `AK ${p.accessKey}` : p.token !== undefined ? 'token' : 'none',
      ]);
      const safe = Object.fromEntries(
        Object.entries(file.profiles).map(([name, p]) => [
          name,
          { ...p, secretKey: undefined, token: undefined },
        ]),
      );
      printRecords(options.output, ['profile', 'endpoint', 'project', 'workspace', 'auth'], rows, {
        default: file.default,
        profiles: safe,
      });
    });

  profile
    .command('set')
    .description('Create or change a profile; the first one becomes the default.')
    .argument('<name>')
    .option('--endpoint <url>', 'server URL')
    .option('--project <id>', 'project id')
    .option('--workspace <id>', 'workspace id')
    .option('--access-key <ak>', 'access key (with --secret-key)')
    .option('--secret-key <sk>', 'secret key; without it a terminal asks (flags show in ps)')
    .option('--token <token>', 'token (X-Auth-Token)')
    .option('--default', 'make it the default profile')
    .action(
      async (
        name: string,
        options: {
          endpoint?: string;
          project?: string;
          workspace?: string;
          accessKey?: string;
          secretKey?: string;
          token?: string;
          default?: boolean;
        },
      ) => {
        validateProfileName(name);
        if (
          (options.accessKey !== undefined || options.secretKey !== undefined) &&
          options.token !== undefined
        ) {
          throw new CliError(EXIT.usage, 'a profile signs with an access key or sends a token, not both');
        }
        const path = profilesPath();
        const file = readProfiles(path);
        const next: Profile = { ...file.profiles[name] };
        if (options.endpoint !== undefined) next.endpoint = options.endpoint;
        if (options.project !== undefined) next.projectId = options.project;
        if (options.workspace !== undefined) next.workspace = options.workspace;
        if (options.accessKey !== undefined || options.secretKey !== undefined) {
          // A new access key never keeps the old key's secret.
          const keepSecret = options.accessKey === undefined || options.accessKey === next.accessKey;
          next.accessKey = options.accessKey ?? next.accessKey;
          next.secretKey = options.secretKey ?? (keepSecret ? next.secretKey : undefined);
          if (next.secretKey === undefined) next.secretKey = await askSecretKey(next.accessKey ?? '');
          delete next.token;
        }
        if (options.token !== undefined) {
          next.token = options.token;
          delete next.accessKey;
          delete next.secretKey;
        }
        file.profiles[name] = next;
        if (options.default || file.default === undefined) file.default = name;
        writeProfiles(path, file);
        note(`profile ${name} saved in ${path}${file.default === name ? ' (default)' : ''}`);
      },
    );

  profile
    .command('use')
    .description('Make a profile the default.')
    .argument('<name>')
    .action((name: string) => {
      const { path, file } = profilesHolding(name);
      file.default = name;
      writeProfiles(path, file);
      note(`default profile: ${name}`);
    });

  profile
    .command('rm')
    .description('Delete a profile.')
    .argument('<name>')
    .action((name: string) => {
      const { path, file } = profilesHolding(name);
      delete file.profiles[name];
      if (file.default === name) delete file.default;
      writeProfiles(path, file);
      note(`deleted profile ${name}`);
    });
}

/** The profiles file and its path, for a command on the profile `name`: a usage error when there is none. */
function profilesHolding(name: string): { path: string; file: ReturnType<typeof readProfiles> } {
  const path = profilesPath();
  const file = readProfiles(path);
  if (file.profiles[name] === undefined) throw new CliError(EXIT.usage, `no profile '${name}' in ${path}`);
  return { path, file };
}

/** Asks for a secret key on a terminal, without echo; elsewhere it must come as a flag. */
async function askSecretKey(accessKey: string): Promise<string> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new CliError(EXIT.usage, `--secret-key is needed with --access-key ${accessKey}`);
  }
  const { password, isCancel } = await import('@clack/prompts');
  const answer = await password({ message: `Secret key for ${accessKey}`, output: process.stderr });
  if (isCancel(answer) || answer === '') throw new CliError(EXIT.usage, 'no secret key given');
  return answer;
}
