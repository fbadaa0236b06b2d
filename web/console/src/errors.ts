/**
 * DLF errors as a person wants to read them: the server's sentence first, then what to do about it
 * where the code says; the code and request id stay available for a bug report, in small print.
 */
import { ApiError } from '../../../src/client/api-client.js';

export interface ReadableError {
  /** One sentence for the person. */
  message: string;
  /** What to do, when the code tells us. */
  hint?: string;
  /** `DLF.6201 · request 1234…`, for reports. */
  detail?: string;
}

const HINTS: Record<string, string> = {
  'APIGW.0301': 'Sign in again with a valid token or access key.',
  'APIGW.0308': 'Too many failed sign-ins from here: wait a minute and try again.',
  'DLF.6888': 'Your credentials do not grant this in this project or workspace.',
  'DLF.6201': 'The script may have been deleted or renamed by someone else: reload the list.',
  'DLF.0202': 'Choose another name: script names are unique in a workspace.',
  'DLF.6322': 'Pick an existing connection (the built-in ones are duckdb and local).',
  'DLF.3051': 'Check the values you entered.',
  'APIGW.0101': 'This server does not offer that call (an older opendlf, or DataArts itself).',
  NETWORK: 'Is the server running? The page will work again once it answers.',
};

export function readableError(error: unknown): ReadableError {
  if (error instanceof ApiError) {
    const hint = HINTS[error.error_code];
    const detail = [error.error_code, error.requestId ? `request ${error.requestId}` : undefined]
      .filter((part) => part !== undefined)
      .join(' · ');
    const message = error.error_code === 'NETWORK' ? 'The server did not answer.' : sentence(error.error_msg);
    return { message, ...(hint ? { hint } : {}), detail };
  }
  if (error instanceof Error) return { message: sentence(error.message) };
  return { message: sentence(String(error)) };
}

/** Capitalised and ending with a full stop, whatever the server sent. */
function sentence(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return 'Something went wrong.';
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** Whether the error means the session's credentials are not (or no longer) accepted. */
export function isAuthenticationError(error: unknown): boolean {
  return error instanceof ApiError && error.status === 401;
}

/** Whether the server lacks an extension endpoint (an older opendlf): the UI then does without it. */
export function isMissingEndpoint(error: unknown): boolean {
  return error instanceof ApiError && error.status === 404 && error.error_code === 'APIGW.0101';
}
