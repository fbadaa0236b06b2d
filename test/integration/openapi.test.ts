/**
 * The OpenAPI document and the reference page: /openapi.json is a valid OpenAPI 3.1 document that
 * lists every route the server registered (a route added without a schema fails here), documented
 * endpoints carry their official page names and extensions are marked; /docs is served from this
 * server alone (checked in the HTML, and in a real browser when chromium is installed); a query
 * parameter the route schema checks is still answered with the DLF envelope, after authentication;
 * and live responses match the documented response schemas.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Type, FormatRegistry, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { chromium } from 'playwright-core';
import { ErrorBody } from '../../src/http/schemas/common.js';
import { historySchemas, logSchemas } from '../../src/http/schemas/instance-extension-schemas.js';
import { SCRIPT_SHARED_SCHEMAS, scriptSchemas } from '../../src/http/schemas/script-schemas.js';
import { assertError, assertOk } from '../helpers/assertions.js';
import { startMultiUserServer } from '../helpers/multi-user.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';

interface RegisteredRoute {
  method: string;
  url: string;
  hidden: boolean;
  /** Whether the route was declared with a schema (without one, the document only guesses its parameters). */
  described: boolean;
}

/**
 * Every route the next fastify instance registers, seen by an `onRoute` hook added the moment the
 * instance is created (fastify announces it on this diagnostics channel), before any route exists.
 */
function collectRoutesOfNextServer(): { routes: RegisteredRoute[]; stop(): void } {
  const routes: RegisteredRoute[] = [];
  const channel = diagnostics.channel('fastify.initialization');
  const onInit = (message: unknown) => {
    const { fastify } = message as { fastify: FastifyInstance };
    fastify.addHook('onRoute', (route: RouteOptions) => {
      for (const method of [route.method].flat()) {
        const schema = route.schema;
        routes.push({
          method,
          url: route.url,
          hidden: schema?.hide === true,
          described: schema?.response !== undefined,
        });
      }
    });
  };
  channel.subscribe(onInit);
  return { routes, stop: () => channel.unsubscribe(onInit) };
}

/** fastify's `/v1/:projectId/x/*` as the document spells it: `/v1/{projectId}/x/{*}`. */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{*}');

type Operation = Record<string, unknown> & { parameters?: { in: string; name: string }[] };
type Document = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, unknown> };
};

function operationsOf(doc: Document): [string, string, Operation][] {
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => [path, method, op] as [string, string, Operation]),
  );
}

describe('OpenAPI document and /docs', () => {
  let server: TestServer;
  let routes: RegisteredRoute[];
  let doc: Document;

  before(async () => {
    const collector = collectRoutesOfNextServer();
    try {
      server = await startTestServer();
    } finally {
      collector.stop();
    }
    routes = collector.routes;
    const response = await fetch(`${server.url}/openapi.json`);
    assert.equal(response.status, 200);
    doc = (await response.json()) as Document;
  });

  after(async () => {
    await server?.close();
  });

  it('the OpenAPI document validates and lists every route', async () => {
    assert.equal(doc.openapi, '3.1.0');
    // Throws with the list of problems when the document is not valid OpenAPI 3.1.
    await SwaggerParser.validate(structuredClone(doc) as never);

    const visible = routes.filter((r) => r.method !== 'HEAD' && !r.hidden);
    assert.ok(visible.length >= 25, `only ${visible.length} routes seen: the collector is broken`);
    const missing = visible
      .filter((r) => !r.described || doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()] === undefined)
      .map((r) => `${r.method} ${r.url}`);
    assert.deepEqual(
      missing,
      [],
      'routes without a schema (give each a `schema` with its responses, or `hide`)',
    );
    // Only the pages' own files may stay out of the document.
    const hidden = routes.filter((r) => r.hidden).map((r) => r.url);
    for (const url of hidden)
      assert.match(url, /^\/(docs|console)(\/|$)/, `${url} is hidden from the document`);

    // And nothing in the document that the server does not route.
    const registered = new Set(visible.map((r) => `${r.method.toLowerCase()} ${openApiPath(r.url)}`));
    for (const [path, method] of operationsOf(doc))
      assert.ok(registered.has(`${method} ${path}`), `${method} ${path}`);

    const served = (await (await fetch(`${server.url}/docs/json`)).json()) as Document;
    assert.deepEqual(served, doc, '/docs/json and /openapi.json are the same document');
  });

  it('names the official page of each documented endpoint and marks every extension', () => {
    const page = (method: string, path: string) => doc.paths[path]?.[method]?.['x-dataarts-api'];
    const scripts = '/v1/{projectId}/scripts';
    assert.equal(page('post', scripts), 'Creating a Script');
    assert.equal(page('get', scripts), 'Querying a Script List');
    assert.equal(page('get', `${scripts}/{scriptName}`), 'Querying a Script');
    assert.equal(page('put', `${scripts}/{scriptName}`), 'Modifying a Script');
    assert.equal(page('delete', `${scripts}/{scriptName}`), 'Deleting a Script');
    assert.equal(page('post', `${scripts}/{scriptName}/execute`), 'Executing a Script');
    assert.equal(
      page('get', `${scripts}/{scriptName}/instances/{instanceId}`),
      'Querying the Execution Result of a Script Instance',
    );
    assert.equal(
      page('post', `${scripts}/{scriptName}/instances/{instanceId}/stop`),
      'Stopping Executing a Script Instance',
    );
    assert.equal(
      page('post', '/v1/{projectId}/connections/export'),
      'Exporting Connections (to Be Taken Offline)',
    );

    assert.deepEqual(Object.keys(doc.components.securitySchemes).sort(), ['akskSignature', 'authToken']);
    const operationIds = new Set<unknown>();
    for (const [path, method, op] of operationsOf(doc)) {
      const where = `${method.toUpperCase()} ${path}`;
      const documented = typeof op['x-dataarts-api'] === 'string';
      assert.ok(documented !== (op['x-opendlf-extension'] === true), `${where}: documented xor extension`);
      assert.ok(Array.isArray(op.tags) && op.tags.length > 0, `${where}: tagged`);
      assert.ok(
        typeof op.operationId === 'string' && !operationIds.has(op.operationId),
        `${where}: operationId`,
      );
      operationIds.add(op.operationId);
      if (path.startsWith('/v1/')) {
        assert.ok(Array.isArray(op.security), `${where}: security`);
        assert.ok(
          op.parameters?.some((p) => p.in === 'header' && p.name === 'workspace'),
          `${where}: the workspace header`,
        );
      }
    }
    // The long poll is an extension parameter of a documented endpoint.
    const waitSeconds = doc.paths[`${scripts}/{scriptName}/instances/{instanceId}`]?.get?.parameters?.find(
      (p) => p.name === 'waitSeconds',
    ) as { schema?: Record<string, unknown> } | undefined;
    assert.equal(waitSeconds?.schema?.['x-opendlf-extension'], true);
  });

  it('/docs is served from this server, with a policy that forbids other origins', async () => {
    const response = await fetch(`${server.url}/docs`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
    const csp = response.headers.get('content-security-policy') ?? '';
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "connect-src 'self'",
      "font-src 'self' data:",
    ]) {
      assert.ok(csp.includes(directive), `${directive} in ${csp}`);
    }
    assert.doesNotMatch(csp, /https?:/);
    const html = await response.text();
    assert.doesNotMatch(html, /https?:\/\//, 'no absolute URL in the page');
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.some((a) => a.endsWith('swagger-ui-bundle.js')));
    for (const asset of assets) {
      assert.match(asset, /^\/docs\/static\//, `${asset} is served by this server`);
      const file = await fetch(new URL(asset, server.url));
      assert.equal(file.status, 200, asset);
      const text = await file.text();
      if (asset.endsWith('.css')) {
        // Style sheets load nothing: every url() is inline data (the w3.org names are SVG namespaces).
        for (const [, target] of text.matchAll(/url\(\s*["']?([^"')\s]+)/g)) assert.match(target!, /^data:/);
        assert.doesNotMatch(text, /@import/);
      }
    }
    const initializer = await (await fetch(`${server.url}/docs/static/swagger-initializer.js`)).text();
    assert.match(initializer, /validatorUrl: null/, 'no validator badge (validator.swagger.io)');
    const code = initializer.replace(/^\s*\/\/.*$/gm, '');
    assert.doesNotMatch(code, /https?:\/\//, 'the initializer names no other origin');
  });

  it(
    'in a browser, /docs shows every operation and fetches nothing from elsewhere',
    {
      skip: existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (Debian package chromium)`,
    },
    async () => {
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
        ],
      });
      try {
        const page = await browser.newPage();
        const requested: string[] = [];
        const refused: string[] = [];
        page.on('request', (request) => requested.push(request.url()));
        page.on('console', (message) => {
          if (/Content Security Policy|Refused to/i.test(message.text())) refused.push(message.text());
        });
        await page.goto(`${server.url}/docs`);
        const operations = operationsOf(doc).length;
        // A string, evaluated in the page (this project's TypeScript has no DOM types).
        await page.waitForFunction(
          `document.querySelectorAll('.opblock').length === ${operations}`,
          undefined,
          {
            timeout: 60_000,
          },
        );
        assert.equal(await page.locator('.opblock-summary-path').filter({ hasText: '/execute' }).count(), 1);
        const elsewhere = requested.filter(
          (url) => !url.startsWith(`${server.url}/`) && !url.startsWith('data:'),
        );
        assert.deepEqual(elsewhere, []);
        assert.ok(
          requested.includes(`${server.url}/docs/json`),
          'the page read the document from this server',
        );
        assert.deepEqual(refused, [], 'the content security policy refused nothing the page needs');
      } finally {
        await browser.close();
      }
    },
  );

  it('a query parameter checked by the route schema is answered with the DLF envelope', async () => {
    const client = server.client();
    await client.createScript({
      name: 'oa_wait',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'select 1 as a',
    });
    const instanceId = await client.execute('oa_wait');
    const at = (query: string) =>
      client.request('GET', client.path(`/oa_wait/instances/${instanceId}${query}`));
    for (const bad of ['61', '60.5', '-1', '1e1', 'abc', '1.2345', '', '100']) {
      const response = await at(`?waitSeconds=${bad}`);
      assertError(response, 400, 'DLF.3051');
      assert.equal(
        response.json.error_msg,
        'The request parameter is invalid: waitSeconds must be a number from 0 to 60',
        bad,
      );
    }
    const twice = await at('?waitSeconds=1&waitSeconds=2');
    assertError(twice, 400, 'DLF.3051');
    assert.equal(
      twice.json.error_msg,
      'The request parameter is invalid: waitSeconds may be given only once',
    );
    for (const good of ['0', '5', '59.999', '60', '60.000']) {
      const response = await at(`?waitSeconds=${good}`);
      assertOk(response);
      assert.equal(response.json.instanceId, instanceId);
    }
    assert.equal((await client.request('DELETE', client.path('/oa_wait'))).status, 204);
  });

  it('the schema check runs after authentication, as the handler check did', async () => {
    const multi = await startMultiUserServer();
    try {
      const path = '/v1/projA0000000000000000000000000001/scripts/x/instances/y?waitSeconds=99';
      const anonymous = await multi.client().request('GET', path);
      assertError(anonymous, 401, 'APIGW.0301');
      const viewer = await multi.as('viewerA').request('GET', path);
      assertError(viewer, 400, 'DLF.3051');
      // The document itself needs no credentials.
      assert.equal((await fetch(`${multi.url}/openapi.json`)).status, 200);
      assert.equal((await fetch(`${multi.url}/docs`)).status, 200);
    } finally {
      await multi.close();
    }
  });

  it('apiDocs: false serves neither the document nor the page', async () => {
    const quiet = await startTestServer({ apiDocs: false });
    try {
      for (const path of ['/openapi.json', '/docs', '/docs/json', '/docs/static/swagger-ui-bundle.js']) {
        const response = await quiet.client().request('GET', path);
        assertError(response, 404, 'APIGW.0101');
      }
      // The API itself is unchanged.
      assertOk(await quiet.client().request('GET', quiet.client().path()));
    } finally {
      await quiet.close();
    }
  });

  it('live responses match the documented response schemas', async () => {
    FormatRegistry.Set('date-time', (value) => !Number.isNaN(Date.parse(value)));
    const check = (schema: TSchema, value: unknown, what: string) => {
      const errors = [...Value.Errors(schema, [...SCRIPT_SHARED_SCHEMAS, ErrorBody], value)].map(
        (e) => `${e.path}: ${e.message}`,
      );
      assert.deepEqual(errors, [], `${what}: ${JSON.stringify(value).slice(0, 300)}`);
    };
    const client = server.client();
    await client.createScript({
      name: 'oa_shape',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'select 1 as a, null as b',
      configuration: { 'spark.sql.x': 1 },
    });
    check(
      scriptSchemas.get.response[200],
      (await client.request('GET', client.path('/oa_shape'))).json,
      'get',
    );
    check(scriptSchemas.list.response[200], (await client.request('GET', client.path())).json, 'list');
    const executed = await client.request('POST', client.path('/oa_shape/execute'));
    check(scriptSchemas.execute.response[200], executed.json, 'execute');
    const settled = await client.waitFor('oa_shape', executed.json.instanceId as string);
    check(scriptSchemas.instance.response[200], settled.json, 'instance result');
    const waited = await client.request('POST', client.path('/oa_shape/execute?waitSeconds=30'));
    assert.equal(waited.json.status, 'FINISHED', waited.text);
    check(scriptSchemas.execute.response[200], waited.json, 'execute ?waitSeconds');
    const history = await client.request('GET', client.path('/oa_shape/instances'));
    assert.equal(history.json.total, 2);
    check(historySchemas.script.response[200], history.json, 'run history');
    await client.createScript({
      name: 'oa_log',
      type: 'Shell',
      connectionName: 'local',
      content: 'echo hello',
    });
    const shell = await client.request('POST', client.path('/oa_log/execute?waitSeconds=30'));
    const log = await client.request('GET', client.path(`/oa_log/instances/${shell.json.instanceId}/log`));
    assertOk(log);
    check(logSchemas.page.response[200], log.json, 'log page');
    assert.equal((await client.request('DELETE', client.path('/oa_log'))).status, 204);
    const missing = await client.request('GET', client.path('/oa_nope'));
    check(scriptSchemas.get.response[400], missing.json, 'error');
    check(Type.Ref('Error'), missing.json, 'error');
    assert.equal((await client.request('DELETE', client.path('/oa_shape'))).status, 204);
  });
});
