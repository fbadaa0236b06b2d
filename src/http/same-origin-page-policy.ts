/**
 * The Content-Security-Policy of the pages the server itself serves (the web console at /console,
 * the API reference at /docs): only this origin, for everything. Neither fetches anything from
 * elsewhere at run time (no CDN, no web fonts, no validator badge), and the browser enforces it.
 * Inline styles are allowed because CodeMirror, AG Grid and swagger-ui set style attributes or
 * inject style sheets at run time; images and fonts may be data: URLs (swagger-ui's logo); scripts
 * are only the bundled files.
 */
export const SAME_ORIGIN_PAGE_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');
