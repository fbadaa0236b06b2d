/** Arguments for `opendlf credentials …`, shared by the tests that manage credentials from the CLI. */

/** An access key with its secret key, or a token. */
export type CliCredential = { readonly ak: string; readonly sk: string } | { readonly token: string };

function credentialFlags(credential: CliCredential): string[] {
  return 'token' in credential
    ? ['--token', credential.token]
    : ['--access-key', credential.ak, '--secret-key', credential.sk];
}

/** `credentials add --data-dir <dir>` for the credential, then the grant flags as given. */
export function credentialsAddArgs(dataDir: string, credential: CliCredential, ...grant: string[]): string[] {
  return ['credentials', 'add', '--data-dir', dataDir, ...credentialFlags(credential), ...grant];
}
