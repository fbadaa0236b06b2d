/**
 * Hostile input, case by case (the fuzz test covers the same ground statistically): oversize bodies
 * rejected before they are buffered, the 4 MB content limit, malformed JSON / wrong types / invalid
 * UTF-8 / 10,000-deep JSON as DLF.3051, duplicate and absurd query parameters, requests the HTTP
 * parser or router refuses (still the DLF envelope), and path traversal through script and
 * connection names, the workspace header, the project id, import paths and SSH key locations —
 * with a check that nothing was created on disk outside the data directory.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertError, assertNoContent, assertOk, JSON_CT } from '../helpers/assertions.js';
import { startTestServer, type ApiResponse, type TestServer } from '../helpers/server.js';

const MiB = 1024 * 1024;
const P = 'hostile-p1';

let sandbox: string;
let dataDir: string;
let server: TestServer;
let target: { host: string; port: number };

/** A request sent exactly as given: path bytes, repeated headers, raw body, optional chunking. */
function send(
  method: string,
  path: string,
  options: { headers?: Record<string, string | string[]>; body?: Buffer | string; chunked?: boolean } = {},
): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { ...options.headers };
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    if (body !== undefined) {
      if (options.chunked) headers['transfer-encoding'] = 'chunked';
      else headers['content-length'] = String(body.length);
      headers['content-type'] ??= 'application/json';
    }
    const request = http.request(
      { host: target.host, port: target.port, method, path, headers, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: response.statusCode ?? 0, headers: toHeaders(response.headers), text, json });
        });
      },
    );
    request.on('error', reject);
    if (body !== undefined) request.write(body);
    request.end();
  });
}

function toHeaders(raw: http.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [k, v] of Object.entries(raw)) {
    if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
  }
  return headers;
}

const post = (path: string, body: unknown, headers?: Record<string, string | string[]>) =>
  send('POST', path, {
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    headers,
  });

/**
 * Writes raw bytes to a fresh socket and returns the response: once its Content-Length is complete,
 * or whatever arrived when the server closed (HEAD).
 */
function raw(bytes: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(target.port, target.host, () => socket.write(bytes));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => done(), 10_000);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      const text = Buffer.concat(chunks).toString('latin1');
      const headEnd = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(text)?.[1];
      if (headEnd >= 0 && length !== undefined && !/^HEAD /.test(bytes.toString())) {
        if (Buffer.byteLength(text, 'latin1') - headEnd - 4 >= Number(length)) done();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', done);
  });
}

/** Parses a raw response into the ApiResponse shape (content-length framed). */
function parseRaw(text: string): ApiResponse {
  const [head = '', ...rest] = text.split('\r\n\r\n');
  const lines = head.split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const body = rest.join('\r\n\r\n');
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status, headers, text: body, json };
}

/** Every file and directory under `dir`, relative to it. */
function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      out.push(relative(dir, full));
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(dir);
  return out.sort();
}

async function healthy(): Promise<void> {
  const res = await send('GET', '/healthz');
  assertOk(res);
}

before(async () => {
  // The data directory sits in a sandbox of its own, so "nothing outside the data directory" can be
  // checked by listing the sandbox.
  sandbox = mkdtempSync(join(tmpdir(), 'opendlf-hostile-'));
  dataDir = join(sandbox, 'data');
  server = await startTestServer({ dataDir, localEngine: { enabled: false } });
  const url = new URL(server.url);
  target = { host: url.hostname, port: Number(url.port) };
});

after(async () => {
  await server.close();
  rmSync(sandbox, { recursive: true, force: true });
});

describe('body size limits', () => {
  it('answers a chunked body over 12 MB with 413 before the client has finished sending it', async () => {
    const sentWhenAnswered = await new Promise<{ res: ApiResponse; sent: number }>((resolve, reject) => {
      let sent = 0;
      const request = http.request(
        {
          host: target.host,
          port: target.port,
          method: 'POST',
          path: `/v1/${P}/scripts`,
          headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
          agent: false,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (c: Buffer) => chunks.push(c));
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            request.destroy();
            resolve({
              res: {
                status: response.statusCode ?? 0,
                headers: toHeaders(response.headers),
                text,
                json: JSON.parse(text),
              },
              sent,
            });
          });
        },
      );
      request.on('error', (error) => {
        if (sent < 12.5 * MiB) reject(error);
      });
      // 12.5 MB in 64 KB chunks, then the request is deliberately left open: the 13 MB body is
      // never completed, so an answer proves the server stopped reading at the limit.
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (sent < 12.5 * MiB) {
          sent += chunk.length;
          if (!request.write(chunk)) {
            request.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    assertError(sentWhenAnswered.res, 413, 'APIGW.0201');
    assert.ok(sentWhenAnswered.sent < 13 * MiB);
    await healthy();
  });

  it('answers a declared Content-Length over 12 MB with 413 without waiting for the body', async () => {
    const text = await raw(
      `POST /v1/${P}/scripts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${13 * MiB}\r\n\r\n{"name":`,
    );
    assertError(parseRaw(text), 413, 'APIGW.0201');
  });

  it('accepts script content of exactly 4 MB and refuses one byte (or one multi-byte character) more', async () => {
    const base = { type: 'DLISQL', connectionName: 'duckdb' };
    assertNoContent(
      await post(`/v1/${P}/scripts`, { ...base, name: 'four_mb', content: 'x'.repeat(4 * MiB) }),
    );
    const over = await post(`/v1/${P}/scripts`, {
      ...base,
      name: 'four_mb_1',
      content: 'x'.repeat(4 * MiB + 1),
    });
    assertError(over, 400, 'DLF.3051');
    assert.match(over.json.error_msg, /4 MB/);
    // 2 Mi + 1 two-byte characters: under 4 Mi characters, over 4 MiB of UTF-8.
    const multibyte = await post(`/v1/${P}/scripts`, {
      ...base,
      name: 'four_mb_2',
      content: 'é'.repeat(2 * MiB + 1),
    });
    assertError(multibyte, 400, 'DLF.3051');
    assertError(await send('GET', `/v1/${P}/scripts/four_mb_1`), 400, 'DLF.6201');
    assertNoContent(await send('DELETE', `/v1/${P}/scripts/four_mb`));
  });
});

describe('malformed bodies', () => {
  it('answers malformed JSON with DLF.3051', async () => {
    for (const body of [
      '{',
      '{"name":',
      "{'name':'a'}",
      '{"a":1,}',
      '{}{}',
      'NaN',
      '[1,2',
      '"unterminated',
      '\u0000',
    ]) {
      assertError(await post(`/v1/${P}/scripts`, body), 400, 'DLF.3051');
      assertError(await post(`/v1/${P}/connections`, body), 400, 'DLF.3051');
    }
  });

  it('answers JSON of the wrong shape or field types with DLF.3051 (a bad type with DLF.6247)', async () => {
    const script = { name: 'typed', type: 'DLISQL' };
    const cases: [string, unknown][] = [
      [`/v1/${P}/scripts`, []],
      [`/v1/${P}/scripts`, 'a string'],
      [`/v1/${P}/scripts`, 42],
      [`/v1/${P}/scripts`, null],
      [`/v1/${P}/scripts`, { ...script, name: 1 }],
      [`/v1/${P}/scripts`, { ...script, name: ['typed'] }],
      [`/v1/${P}/scripts`, { ...script, content: [] }],
      [`/v1/${P}/scripts`, { ...script, configuration: 'x' }],
      [`/v1/${P}/scripts`, { ...script, configuration: [1] }],
      [`/v1/${P}/scripts`, { ...script, directory: 5 }],
      [`/v1/${P}/scripts`, { ...script, description: {} }],
      [`/v1/${P}/scripts`, { ...script, approvers: 'x' }],
      [`/v1/${P}/scripts`, { ...script, targetStatus: true }],
      [`/v1/${P}/connections`, { name: 'c', type: 'DLI', config: 'x' }],
      [`/v1/${P}/connections`, { name: 'c', type: 'DLI', description: 5 }],
      [`/v1/${P}/connections`, { name: 7, type: 'DLI' }],
      [`/v1/${P}/connections/import`, { path: 5 }],
      [`/v1/${P}/connections/import`, { path: 'x.zip', params: {} }],
      [`/v1/${P}/connections/import`, { path: 'x.zip', sameNamePolicy: 1 }],
    ];
    for (const [path, body] of cases) {
      const res = await post(path, body);
      assertError(res, 400, 'DLF.3051');
    }
    assertError(await post(`/v1/${P}/scripts`, { name: 'typed', type: ['DLISQL'] }), 400, 'DLF.6247');
    assertError(
      await post(`/v1/${P}/scripts`, { name: 'typed', type: 'x'.repeat(100_000) }),
      400,
      'DLF.6247',
    );
  });

  it('answers an execute body with wrong types with DLF.3051', async () => {
    assertNoContent(
      await post(`/v1/${P}/scripts`, {
        name: 'exec_types',
        type: 'DLISQL',
        connectionName: 'duckdb',
        content: 'SELECT 1',
      }),
    );
    for (const body of [
      [],
      '"x"',
      { params: [] },
      { params: 'x' },
      { params: { 'bad name!': 'v' } },
      { params: { ['p'.repeat(17)]: 'v' } },
    ]) {
      assertError(
        await post(
          `/v1/${P}/scripts/exec_types/execute`,
          typeof body === 'string' ? body : JSON.stringify(body),
        ),
        400,
        'DLF.3051',
      );
    }
  });

  it('answers a body that is not valid UTF-8 with DLF.3051 and stores nothing', async () => {
    const prefix = Buffer.from('{"name":"utf8_bad","type":"DLISQL","content":"', 'utf8');
    const suffix = Buffer.from('"}', 'utf8');
    for (const bad of [
      [0xff],
      [0xc0, 0xaf],
      [0xe6, 0x97],
      [0xed, 0xa0, 0x80],
      [0x80],
      [0xf8, 0x88, 0x80, 0x80, 0x80],
    ]) {
      const res = await post(`/v1/${P}/scripts`, Buffer.concat([prefix, Buffer.from(bad), suffix]));
      assertError(res, 400, 'DLF.3051');
      assert.match(res.json.error_msg, /UTF-8/);
    }
    assertError(await send('GET', `/v1/${P}/scripts/utf8_bad`), 400, 'DLF.6201');
    // Valid multi-byte UTF-8 is of course fine.
    assertNoContent(
      await post(`/v1/${P}/scripts`, { name: 'utf8_ok', type: 'DLISQL', content: "SELECT '日本 😀'" }),
    );
    const stored = await send('GET', `/v1/${P}/scripts/utf8_ok`);
    assert.equal(stored.json.content, "SELECT '日本 😀'");
  });

  it('answers 10,000-deep JSON with a clean DLF.3051 (top level and inside fields), and the server lives on', async () => {
    const deepArray = '['.repeat(10_000) + ']'.repeat(10_000);
    const deepObject = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000);
    const bodies = [
      deepArray,
      deepObject,
      `{"name":"deep","type":"DLISQL","configuration":{"k":${deepObject}}}`,
      `{"name":"deep","type":${deepArray}}`,
      `{"name":${deepArray},"type":"DLISQL"}`,
    ];
    for (const body of bodies) {
      const res = await post(`/v1/${P}/scripts`, body);
      assertError(res, 400, 'DLF.3051');
      assert.match(res.json.error_msg, /nested deeper/);
    }
    assertNoContent(
      await post(`/v1/${P}/scripts`, {
        name: 'deep_exec',
        type: 'DLISQL',
        connectionName: 'duckdb',
        content: 'SELECT 1',
      }),
    );
    assertError(
      await post(`/v1/${P}/scripts/deep_exec/execute`, `{"params":{"p":${deepArray}}}`),
      400,
      'DLF.3051',
    );
    assertError(
      await post(`/v1/${P}/connections`, `{"name":"deep","type":"DLI","config":{"k":${deepObject}}}`),
      400,
      'DLF.3051',
    );
    assertError(
      await post(`/v1/${P}/connections/import`, `{"path":"x.zip","params":${deepArray}}`),
      400,
      'DLF.3051',
    );
    // Nesting that real clients produce is far below the limit and accepted.
    const nested = '{"a":'.repeat(40) + '1' + '}'.repeat(40);
    assertNoContent(
      await post(`/v1/${P}/scripts`, `{"name":"nested_ok","type":"DLISQL","configuration":{"k":${nested}}}`),
    );
    await healthy();
  });

  it('keeps prototype-pollution keys harmless', async () => {
    const before = Object.getOwnPropertyNames(Object.prototype).sort();
    assertError(
      await post(
        `/v1/${P}/scripts`,
        '{"name":"proto","type":"DLISQL","configuration":{"__proto__":{"polluted":"yes"}}}',
      ),
      400,
      'DLF.3051',
    );
    assertError(
      await post(`/v1/${P}/connections`, '{"name":"proto","type":"DLI","config":{"__proto__":"x"}}'),
      400,
      'DLF.3051',
    );
    assertError(
      await post(`/v1/${P}/scripts/deep_exec/execute`, '{"params":{"__proto__":"x"}}'),
      400,
      'DLF.3051',
    );
    // A top-level __proto__ is just an unknown key.
    assertNoContent(
      await post(
        `/v1/${P}/scripts`,
        '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"name":"proto","type":"DLISQL"}',
      ),
    );
    // Values that cannot be converted to a string by String() (no callable toString) are not a 500.
    const res = await post(`/v1/${P}/connections/import`, {
      path: 'missing.zip',
      params: [{ name: 'c', params: { k: { toString: 1, valueOf: 2 } } }],
    });
    assertError(res, 400, 'DLF.0815');
    assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), before);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('query parameters', () => {
  it('answers duplicate query keys with DLF.3051', async () => {
    for (const path of [
      `/v1/${P}/scripts?offset=0&offset=1`,
      `/v1/${P}/scripts?limit=10&limit=10`,
      `/v1/${P}/scripts?scriptName=a&scriptName=b`,
      `/v1/${P}/connections?limit=1&limit=2`,
      `/v1/${P}/connections?connectionName=a&connectionName=a`,
      `/v1/${P}/scripts/deep_exec/instances?limit=1&limit=2`,
    ]) {
      const res = await send('GET', path);
      assertError(res, 400, 'DLF.3051');
      assert.match(res.json.error_msg, /only once/);
    }
    assertError(
      await send('PUT', `/v1/${P}/connections/x?ischeck=false&ischeck=false`, {
        body: '{"name":"x","type":"DLI"}',
      }),
      400,
      'DLF.3051',
    );
  });

  it('answers absurd offsets and limits with DLF.3051', async () => {
    const offsets = [
      '-1',
      '1.5',
      '1e3',
      'abc',
      '99999999999999999999999',
      '1000000001',
      ' 1',
      '0x10',
      'NaN',
      '%ZZ',
      '１',
    ];
    const limits = ['0', '-1', '1001', '1e2', 'abc', '99999999999999999999999', '10.0', '+5', 'Infinity'];
    for (const base of [`/v1/${P}/scripts`, `/v1/${P}/connections`]) {
      for (const offset of offsets) {
        assertError(await send('GET', `${base}?offset=${encodeURIComponent(offset)}`), 400, 'DLF.3051');
      }
      for (const limit of limits) {
        assertError(await send('GET', `${base}?limit=${encodeURIComponent(limit)}`), 400, 'DLF.3051');
      }
      assertOk(await send('GET', `${base}?offset=1000000000&limit=1000`));
    }
    for (const limit of limits) {
      assertError(
        await send('GET', `/v1/${P}/scripts/deep_exec/instances?limit=${encodeURIComponent(limit)}`),
        400,
        'DLF.3051',
      );
    }
  });
});

describe('requests refused by the HTTP parser or the router still get the DLF envelope', () => {
  it('undecodable %-escapes and over-long path segments', async () => {
    for (const path of [
      `/v1/${P}/scripts/%ZZ`,
      `/v1/${P}/scripts/%C0%AF`,
      `/v1/${P}/scripts/%E0%80%80`,
      `/v1/${P}/scripts/%`,
      '/v1/%ZZ/scripts',
      `/v1/${P}/connections/%FF`,
      `/v1/${P}/scripts/s/instances/%ZZ/stop`,
      `/v1/${P}/scripts/${'a'.repeat(1025)}`,
    ]) {
      const res = await send('GET', path);
      assertError(res, 400, 'DLF.3051');
    }
  });

  it('malformed request lines and headers, unknown methods, missing Host, CONNECT, Expect', async () => {
    const requests = [
      `GET /v1/${P}/scripts/\xff HTTP/1.1\r\nHost: x\r\n\r\n`,
      `GET /v1/${P}/scr ipts HTTP/1.1\r\nHost: x\r\n\r\n`,
      `GET /v1/${P}/scripts HTTP/1.1\r\nHost: x\r\nworkspace: \x01\r\n\r\n`,
      `GET /v1/${P}/scripts HTTP/1.1\r\nHost: x\r\nworkspace: a\r\n folded\r\n\r\n`,
      `FOO /v1/${P}/scripts HTTP/1.1\r\nHost: x\r\n\r\n`,
      `POST /v1/${P}/scripts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}`,
      `POST /v1/${P}/scripts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      `POST /v1/${P}/scripts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n`,
      `GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n`, // no Host
    ];
    for (const request of requests) {
      const res = parseRaw(await raw(request));
      assertError(res, 400, 'DLF.3051');
    }
    const huge = parseRaw(
      await raw(`GET /v1/${P}/scripts HTTP/1.1\r\nHost: x\r\nworkspace: ${'a'.repeat(20_000)}\r\n\r\n`),
    );
    assertError(huge, 431, 'OPENDLF.0431');
    const connect = parseRaw(
      await raw('CONNECT example.invalid:443 HTTP/1.1\r\nHost: example.invalid:443\r\n\r\n'),
    );
    assertError(connect, 404, 'APIGW.0101');
    const expect = parseRaw(
      await raw(
        `POST /v1/${P}/scripts HTTP/1.1\r\nHost: x\r\nExpect: something\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
      ),
    );
    assertError(expect, 417, 'OPENDLF.0417');
    // HEAD: the same status and headers, but no body (it would be read as the next response).
    const head = await raw(`HEAD /v1/${P}/scripts/\xff HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(head, /^HTTP\/1\.1 400 /);
    assert.ok(head.endsWith('\r\n\r\n'), head);
    assert.match(head, new RegExp(`content-type: ${JSON_CT.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`, 'i'));
    // The same for a HEAD whose target ends right at the header size limit (the parser stops at the
    // space before the version).
    const longHead = await raw(`HEAD /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(longHead, /^HTTP\/1\.1 431 /);
    assert.ok(longHead.endsWith('\r\n\r\n'), longHead);
    await healthy();
  });

  it('treats duplicated or odd workspace headers as unknown workspaces, never as two', async () => {
    for (const workspace of [
      ['ws1', 'ws2'],
      ['ws1', 'ws1'],
      'ws1, ws2',
      ' ',
      'a'.repeat(65),
      Buffer.from('日本', 'utf8').toString('latin1'),
    ]) {
      const res = await send('GET', `/v1/${P}/scripts`, { headers: { workspace } });
      if (workspace === ' ')
        assertOk(res); // blank ⇒ the default workspace
      else assertError(res, 400, 'DLF.0819');
    }
  });
});

describe('path traversal', () => {
  it('refuses names, workspaces and project ids that would meet a file path, and creates nothing outside the data directory', async () => {
    const evilNames = [
      '../../evil',
      '..',
      '.',
      'a/b',
      '/etc/passwd',
      '..\\..\\evil',
      'x\u0000y',
      '%2e%2e%2fevil',
    ];
    for (const name of evilNames) {
      assertError(
        await post(`/v1/${P}/scripts`, {
          name,
          type: 'DLISQL',
          connectionName: 'duckdb',
          content: 'SELECT 1',
        }),
        400,
        'DLF.3051',
      );
      assertError(await post(`/v1/${P}/connections`, { name, type: 'DLI' }), 400, 'DLF.3051');
    }
    // Through the path (encoded and raw dot segments): nothing found, nothing created.
    for (const segment of ['..%2F..%2Fevil', '%2E%2E', '..%5C..%5Cevil', '%2e%2e%2f%2e%2e%2fetc%2fpasswd']) {
      assertError(await send('GET', `/v1/${P}/scripts/${segment}`), 400, 'DLF.6201');
      assertError(await send('POST', `/v1/${P}/scripts/${segment}/execute`), 400, 'DLF.6201');
      assertError(await send('GET', `/v1/${P}/connections/${segment}`), 400, 'DLF.6322');
    }
    // Workspace ids and project ids become DuckDB file names: refused before any file is opened.
    assertNoContent(
      await post(`/v1/${P}/scripts`, {
        name: 'runs',
        type: 'DLISQL',
        connectionName: 'duckdb',
        content: 'SELECT 1',
      }),
    );
    for (const workspace of ['../../evil', '..', '.', 'a/b', '/tmp/evil', '..\\evil', '%2e%2e']) {
      assertError(
        await post(`/v1/${P}/scripts`, { name: 'w', type: 'DLISQL' }, { workspace }),
        400,
        'DLF.0819',
      );
      assertError(
        await send('POST', `/v1/${P}/scripts/runs/execute`, { headers: { workspace } }),
        400,
        'DLF.0819',
      );
    }
    for (const project of ['%2E%2E', '..%2Fevil', '%2Fetc', 'a%5Cb']) {
      assertError(await send('POST', `/v1/${project}/scripts/runs/execute`), 400, 'DLF.3051');
    }
    // A real run still works and puts its database where it belongs.
    const executed = await send('POST', `/v1/${P}/scripts/runs/execute`);
    assertOk(executed);
    const client = server.client(P);
    await client.waitFor('runs', executed.json.instanceId);

    assert.deepEqual(readdirSync(sandbox), ['data'], 'something was created beside the data directory');
    const tree = listTree(dataDir);
    assert.ok(tree.includes(join('duckdb', P, 'default.duckdb')), tree.join('\n'));
    assert.deepEqual(
      tree.filter((f) => /evil|passwd|etc/.test(f)),
      [],
      `traversal names reached the file system:\n${tree.join('\n')}`,
    );
  });

  it('keeps import paths inside the import directory, symlinks included', async () => {
    const outside = join(sandbox, 'outside.zip');
    writeFileSync(outside, 'not a zip');
    symlinkSync(outside, join(dataDir, 'imports', 'link.zip'));
    try {
      for (const path of [
        '../../outside.zip',
        outside,
        '/etc/passwd',
        'link.zip',
        '../secret.key',
        '..',
        '/',
      ]) {
        const res = await post(`/v1/${P}/connections/import`, { path });
        assertError(res, 400, 'DLF.0803');
      }
      assertError(await post(`/v1/${P}/connections/import`, { path: 'a\u0000b' }), 400, 'DLF.0815');
      // Outside paths are refused the same way whether or not they exist (no probing of server files).
      const missing = await post(`/v1/${P}/connections/import`, { path: '/etc/no-such-file-here' });
      const existing = await post(`/v1/${P}/connections/import`, { path: '/etc/passwd' });
      assert.equal(missing.json.error_msg, existing.json.error_msg);
    } finally {
      rmSync(join(dataDir, 'imports', 'link.zip'), { force: true });
      rmSync(outside, { force: true });
    }
  });

  it('keeps SSH key locations inside the project key directory and does not reveal which outside files exist', async () => {
    // Keys are per project: ssh-keys/<projectId>/ (connection-secrets.test.ts covers other projects).
    const keyDir = join(dataDir, 'ssh-keys', P);
    mkdirSync(keyDir, { recursive: true });
    symlinkSync('/etc/passwd', join(keyDir, 'escape'));
    try {
      // Port 1 on loopback: even a key that passed the checks could not lead anywhere.
      const connection = (keyLocation: string) => ({
        name: 'keyed',
        type: 'HOST',
        config: { ip: '127.0.0.1', port: '1', userName: 'u', keyLocation },
      });
      assertNoContent(await post(`/v1/${P}/connections`, connection('k')));
      const messages: string[] = [];
      for (const keyLocation of [
        '/etc/passwd',
        '/etc/no-such-file-here',
        '../secret.key',
        '../../outside',
        '../other-project/id_rsa',
      ]) {
        const res = await send('PUT', `/v1/${P}/connections/keyed?ischeck=true`, {
          body: JSON.stringify(connection(keyLocation)),
        });
        assertError(res, 400, 'DLF.3051');
        assert.match(res.json.error_msg, /inside this project's SSH key directory \(ssh-keys\//);
        assert.ok(!res.json.error_msg.includes(dataDir), res.json.error_msg);
        messages.push(res.json.error_msg);
      }
      assert.equal(new Set(messages).size, 1, `the messages differ:\n${messages.join('\n')}`);
      // A symbolic link inside the directory is refused, not followed.
      const res = await send('PUT', `/v1/${P}/connections/keyed?ischeck=true`, {
        body: JSON.stringify(connection('escape')),
      });
      assertError(res, 400, 'DLF.3051');
      assert.match(res.json.error_msg, /symbolic link/);
    } finally {
      rmSync(join(keyDir, 'escape'), { force: true });
    }
  });

  it('refuses a secret sent in the sealed form instead of failing to open it later (no 500)', async () => {
    const body = {
      name: 'sealed',
      type: 'HOST',
      config: { ip: '127.0.0.1', port: '1', userName: 'u', password: 'enc:v1:AAAA:BBBB:CCCC' },
    };
    assertError(await post(`/v1/${P}/connections`, body), 400, 'DLF.3051');
    assertNoContent(
      await post(`/v1/${P}/connections`, { ...body, config: { ...body.config, password: 'pw' } }),
    );
    const res = await send('PUT', `/v1/${P}/connections/sealed?ischeck=true`, { body: JSON.stringify(body) });
    assertError(res, 400, 'DLF.3051');
  });
});
