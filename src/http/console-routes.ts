/**
 * The web console's static files at /console (built by `npm run build` into dist/console). Any path
 * under /console that is not a file answers index.html, so the console's own routes
 * (/console/scripts/…) survive a reload. No authentication here: the files hold no data, and every
 * API call the console makes carries its own credentials to the /v1 routes.
 */
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { SAME_ORIGIN_PAGE_POLICY } from './same-origin-page-policy.js';

/** Vite names built assets by content hash, so they never change under the same name. */
const IMMUTABLE_ASSETS = /^assets\/[^/]+-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>opendlf console</title></head>
<body style="font-family: sans-serif; margin: 3em">
<h1>The web console has not been built</h1>
<p>Run <code>npm run build</code> in the opendlf directory, then reload this page.
The REST API at <code>/v1/…</code> works without it.</p>
</body></html>
`;

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * Registers GET /console and GET /console/* serving `directory` (absolute). The static plugin is
 * registered in its own encapsulated scope, so its `sendFile` decoration does not meet any other
 * plugin's (the OpenAPI UI registers the same plugin).
 */
export function registerConsoleRoutes(app: FastifyInstance, directory: string): void {
  // Not built (a checkout without `npm run build`): every page answers NOT_BUILT_PAGE. The static
  // plugin is not registered then, as it warns at every start about a root that does not exist.
  const built = existsSync(directory);
  void app.register(async (scope) => {
    if (built) await scope.register(fastifyStatic, { root: directory, serve: false });

    async function serveIndex(reply: FastifyReply) {
      void reply.header('content-security-policy', SAME_ORIGIN_PAGE_POLICY);
      if (!built || !(await isFile(join(directory, 'index.html')))) {
        return reply.status(404).type('text/html; charset=utf-8').send(NOT_BUILT_PAGE);
      }
      return reply.header('cache-control', 'no-cache').sendFile('index.html', { cacheControl: false });
    }

    // The page's own files: not API operations, so not in the OpenAPI document.
    const page = { schema: { hide: true } };
    scope.get('/console', page, (_request, reply) => serveIndex(reply));
    scope.get<{ Params: { '*': string } }>('/console/*', page, async (request, reply) => {
      const relative = request.params['*'];
      // Only plain relative paths name files; anything with `..`, `.`-files or empty segments is
      // treated as a console route (and answered index.html), never resolved against the disk.
      const segments = relative.split('/');
      const plain =
        relative !== '' && segments.every((s) => s !== '' && !s.startsWith('.') && !s.includes('\\'));
      if (built && plain && (await isFile(join(directory, relative)))) {
        void reply.header('content-security-policy', SAME_ORIGIN_PAGE_POLICY);
        void reply.header(
          'cache-control',
          IMMUTABLE_ASSETS.test(relative) ? 'public, max-age=31536000, immutable' : 'no-cache',
        );
        return reply.sendFile(relative, { cacheControl: false });
      }
      // A missing asset is a 404, not the page: a stale index.html naming an old bundle must fail
      // visibly rather than load HTML as a script.
      if (segments[0] === 'assets') {
        return reply.status(404).type('text/plain; charset=utf-8').send('Not found\n');
      }
      return serveIndex(reply);
    });
  });
}
