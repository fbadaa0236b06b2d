/**
 * The server's environment minus its own OPENDLF_* variables (secret key, store URL with its
 * password): what a process the server starts may inherit when it runs as the server's user.
 */
export function environmentWithoutServerSettings(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('OPENDLF_') && value !== undefined) env[key] = value;
  }
  return env;
}
