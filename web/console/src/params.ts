/**
 * The `${name}` parameters a script uses, for the Run dialog. Names follow DataArts' parameter rule
 * (1-16 of letters, digits, `_ - < >`; the server checks the same). The execute substitutes only
 * names given, so `${HOME}` in a shell script may be left empty here and stays as it is.
 */
const PARAMETER = /\$\{([A-Za-z0-9_<>-]{1,16})\}/g;

/** Distinct names in order of first use. */
export function parameterNames(content: string): string[] {
  const names: string[] = [];
  for (const match of content.matchAll(PARAMETER)) {
    const name = match[1];
    if (name !== undefined && !names.includes(name)) names.push(name);
  }
  return names;
}

const VALUES_KEY = 'opendlf.console.params';

/** The values last used for a script's parameters (this browser tab). */
export function lastParameterValues(scriptName: string): Record<string, string> {
  try {
    const all = JSON.parse(sessionStorage.getItem(VALUES_KEY) ?? '{}') as Record<
      string,
      Record<string, string>
    >;
    return all[scriptName] ?? {};
  } catch {
    return {};
  }
}

export function rememberParameterValues(scriptName: string, values: Record<string, string>): void {
  let all: Record<string, Record<string, string>> = {};
  try {
    all = JSON.parse(sessionStorage.getItem(VALUES_KEY) ?? '{}') as Record<string, Record<string, string>>;
  } catch {
    // A corrupt entry is replaced.
  }
  all[scriptName] = values;
  sessionStorage.setItem(VALUES_KEY, JSON.stringify(all));
}
