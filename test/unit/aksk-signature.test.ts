import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  parseAuthorization,
  verifySignature,
  type SignedRequest,
  type VerifyResult,
} from '../../src/http/auth/aksk-signature.js';
import {
  asReceived,
  goQueryString,
  pythonQueryString,
  sdkDate,
  huaweiGoV3QueryString,
  signGo,
  signHuaweiGoV3,
  signPython,
  type GoSignArgs,
  type HuaweiGoV3SignArgs,
  type SignArgs,
} from '../helpers/signers.js';

const PROJECT = '0123456789abcdef0123456789abcdef';
const BASE = `http://127.0.0.1:8080/v1/${PROJECT}`;
const PY_AK = 'PYTESTAK0000000000';
const PY_SK = 'PyTestSecret/0123456789+abcdefghijKLMN';
const GO_AK = 'GOTESTAK0000000000';
const GO_SK = 'GoTestSecret/0123456789+abcdefghijKLMN';
const SECRETS = new Map([
  [PY_AK, PY_SK],
  [GO_AK, GO_SK],
]);
const SIGNED_AT = new Date('2024-01-02T03:04:05Z');
const NOW = new Date(SIGNED_AT.getTime() + 2_000);
const SKEW = 15 * 60 * 1000;

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

function verify(request: SignedRequest, now: Date = NOW): VerifyResult {
  return verifySignature(request, (ak) => SECRETS.get(ak), { now, maxSkewMs: SKEW });
}

/** As verify, on a route that takes raw uploads (the zip import): UNSIGNED-PAYLOAD may be honoured. */
function verifyRawBodyRoute(request: SignedRequest, now: Date = NOW): VerifyResult {
  return verifySignature(request, (ak) => SECRETS.get(ak), {
    now,
    maxSkewMs: SKEW,
    allowUnsignedPayload: true,
  });
}

function assertOk(result: VerifyResult, accessKey: string, style: 'python' | 'go'): void {
  assert.deepEqual(result, { ok: true, accessKey, style });
}

function assertRejected(result: VerifyResult, reason: string): void {
  assert.deepEqual(result, { ok: false, reason });
}

type Call = Omit<SignArgs, 'ak' | 'sk' | 'date'> &
  Partial<Pick<GoSignArgs, 'ak' | 'sk' | 'date' | 'region' | 'service'>>;

/** Signs with the Python-style helper and returns the request as the server receives it. */
function py(call: Call): SignedRequest & { sent: Record<string, string> } {
  const sent = signPython({ ak: PY_AK, sk: PY_SK, date: SIGNED_AT, ...call });
  return { ...asReceived({ method: call.method, url: call.url, headers: sent, body: call.body }), sent };
}

/** Signs with the Go-style helper and returns the request as the server receives it. */
function go(call: Call): SignedRequest & { sent: Record<string, string> } {
  const sent = signGo({ ak: GO_AK, sk: GO_SK, date: SIGNED_AT, ...call });
  return { ...asReceived({ method: call.method, url: call.url, headers: sent, body: call.body }), sent };
}

/** Signs as huaweicloud-sdk-go-v3 does (Access= style, no host) and returns the request as received. */
function goV3(
  call: Omit<HuaweiGoV3SignArgs, 'ak' | 'sk' | 'date'> & { host?: string },
): SignedRequest & { sent: Record<string, string> } {
  const sent = signHuaweiGoV3({ ak: PY_AK, sk: PY_SK, date: SIGNED_AT, ...call });
  const received = asReceived({
    method: call.method,
    url: call.url,
    headers: { ...sent, Host: call.host ?? new URL(call.url).host },
    body: call.body,
  });
  return { ...received, sent };
}

const authorizationOf = (request: SignedRequest): string => String(request.headers['authorization']);
const withHeaders = (request: SignedRequest, headers: Record<string, string | undefined>): SignedRequest => ({
  ...request,
  headers: { ...request.headers, ...headers },
});

// -------------------------------------------------------------------------------------------------
// (a) Known-answer vectors. Each is derived step by step below with node:crypto only; the expected
// hex values were also derived independently with Python's urllib.parse.quote / hmac / hashlib.

describe('known-answer vectors', () => {
  it('Python SDK style: POST execute with a percent-encoded segment and a space in a query value', () => {
    // Vector:
    //   method  POST
    //   URL     http://127.0.0.1:8080/v1/<PROJECT>/scripts/daily%20report/execute?a=1&b=two%20words
    //           (the SDK sends its canonical query on the wire: sorted, %20 for the space)
    //   headers Content-Type: application/json;charset=utf-8   Host: 127.0.0.1:8080
    //           User-Agent: huaweicloud-usdk-python/3.0         workspace: ws-1
    //           X-Project-Id: <PROJECT>                         X-Sdk-Date: 20240102T030405Z
    //   body    {"params":{"day":"2024-01-01"}}
    //   AK/SK   PY_AK / PY_SK above; date 2024-01-02T03:04:05Z
    const body = '{"params":{"day":"2024-01-01"}}';
    const bodyHash = sha256(body);
    assert.equal(bodyHash, 'df22acd722758502b52b89d63bf027845bfb8e0d3b7a35cb9400f51b1c667a6e');

    const canonical = [
      'POST',
      `/v1/${PROJECT}/scripts/daily%20report/execute/`, // segment decoded, re-encoded; trailing '/'
      'a=1&b=two%20words',
      'content-type:application/json;charset=utf-8',
      'host:127.0.0.1:8080',
      'user-agent:huaweicloud-usdk-python/3.0',
      'workspace:ws-1',
      `x-project-id:${PROJECT}`,
      'x-sdk-date:20240102T030405Z',
      '', // CanonicalHeaders ends with '\n', then the separator
      'content-type;host;user-agent;workspace;x-project-id;x-sdk-date',
      bodyHash,
    ].join('\n');
    assert.equal(
      canonical,
      'POST\n/v1/0123456789abcdef0123456789abcdef/scripts/daily%20report/execute/\na=1&b=two%20words\n' +
        'content-type:application/json;charset=utf-8\nhost:127.0.0.1:8080\nuser-agent:huaweicloud-usdk-python/3.0\n' +
        'workspace:ws-1\nx-project-id:0123456789abcdef0123456789abcdef\nx-sdk-date:20240102T030405Z\n\n' +
        'content-type;host;user-agent;workspace;x-project-id;x-sdk-date\n' +
        'df22acd722758502b52b89d63bf027845bfb8e0d3b7a35cb9400f51b1c667a6e',
    );
    const stringToSign = `SDK-HMAC-SHA256\n20240102T030405Z\n${sha256(canonical)}`;
    assert.equal(
      stringToSign,
      'SDK-HMAC-SHA256\n20240102T030405Z\n16cc588732773b36c41068b2b424c2718923607715d084f7af8b366d59acdec0',
    );
    const signature = hmac(PY_SK, stringToSign).toString('hex');
    assert.equal(signature, 'f8b5286313c7eb0285d001885247bb9ebb6de81c38e98e16af45922cb2a4a63a');

    const authorization =
      `SDK-HMAC-SHA256 Access=${PY_AK}, ` +
      'SignedHeaders=content-type;host;user-agent;workspace;x-project-id;x-sdk-date, ' +
      `Signature=${signature}`;
    const request: SignedRequest = {
      method: 'POST',
      rawUrl: `/v1/${PROJECT}/scripts/daily%20report/execute?a=1&b=two%20words`,
      headers: {
        'content-type': 'application/json;charset=utf-8',
        host: '127.0.0.1:8080',
        'user-agent': 'huaweicloud-usdk-python/3.0',
        workspace: 'ws-1',
        'x-project-id': PROJECT,
        'x-sdk-date': '20240102T030405Z',
        authorization,
        accept: '*/*',
        'content-length': String(body.length),
      },
      body: Buffer.from(body),
    };
    assertOk(verify(request), PY_AK, 'python');

    // The independent helper signer produces the same header.
    const sent = signPython({
      method: 'POST',
      url: `${BASE}/scripts/daily%20report/execute?a=1&b=two%20words`,
      headers: { workspace: 'ws-1' },
      body,
      ak: PY_AK,
      sk: PY_SK,
      date: SIGNED_AT,
      projectId: PROJECT,
    });
    assert.equal(sent['Authorization'], authorization);
  });

  it('gophertelekomcloud style: GET with a repeated key and a space sent as +', () => {
    // Vector:
    //   method  GET
    //   URL     http://127.0.0.1:8080/v1/<PROJECT>/scripts/daily%20report/instances/inst-1?a=1&a=0&b=two+words
    //           (Go's url.Values.Encode(): keys sorted, '+' for the space)
    //   headers signed: Accept: application/json  Host: 127.0.0.1:8080  User-Agent: golangsdk/2.0.0
    //                   workspace: ws-1  X-Sdk-Date: 20240102T030405Z
    //           unsigned (added after signing): X-Project-Id: <PROJECT>
    //   body    none;  AK/SK GO_AK / GO_SK above;  region = service = '' (as the client passes)
    const emptyHash = sha256('');
    assert.equal(emptyHash, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const canonical = [
      'GET',
      `/v1/${PROJECT}/scripts/daily%20report/instances/inst-1/`,
      'a=1&b=two%20words', // first value of 'a' only; '+' decoded to a space, re-encoded as %20
      'accept:application/json',
      'host:127.0.0.1:8080',
      'user-agent:golangsdk/2.0.0',
      'workspace:ws-1',
      'x-sdk-date:20240102T030405Z',
      '',
      'accept;host;user-agent;workspace;x-sdk-date',
      emptyHash,
    ].join('\n');
    assert.equal(
      canonical,
      'GET\n/v1/0123456789abcdef0123456789abcdef/scripts/daily%20report/instances/inst-1/\na=1&b=two%20words\n' +
        'accept:application/json\nhost:127.0.0.1:8080\nuser-agent:golangsdk/2.0.0\nworkspace:ws-1\n' +
        'x-sdk-date:20240102T030405Z\n\naccept;host;user-agent;workspace;x-sdk-date\n' +
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    const scope = '20240102///sdk_request';
    const stringToSign = `SDK-HMAC-SHA256\n20240102T030405Z\n${scope}\n${sha256(canonical)}`;
    assert.equal(
      stringToSign,
      'SDK-HMAC-SHA256\n20240102T030405Z\n20240102///sdk_request\n' +
        'f14931bcef032c700bda582416f0c5dcc3388f8d384bfacb5c581585e8c8bbf6',
    );
    const kDate = hmac(`SDK${GO_SK}`, '20240102');
    const kRegion = hmac(kDate, '');
    const kService = hmac(kRegion, '');
    const kSigning = hmac(kService, 'sdk_request');
    const signature = hmac(kSigning, stringToSign).toString('hex');
    assert.equal(signature, '87178dcc5f63dd31618617ce6ee6b8762aaa2f77080a52e5637929445b04c02f');

    const authorization =
      `SDK-HMAC-SHA256 Credential=${GO_AK}/20240102///sdk_request, ` +
      `SignedHeaders=accept;host;user-agent;workspace;x-sdk-date, Signature=${signature}`;
    const request: SignedRequest = {
      method: 'GET',
      rawUrl: `/v1/${PROJECT}/scripts/daily%20report/instances/inst-1?a=1&a=0&b=two+words`,
      headers: {
        accept: 'application/json',
        host: '127.0.0.1:8080',
        'user-agent': 'golangsdk/2.0.0',
        workspace: 'ws-1',
        'x-sdk-date': '20240102T030405Z',
        'x-project-id': PROJECT,
        'accept-encoding': 'gzip',
        authorization,
      },
      body: Buffer.alloc(0),
    };
    assertOk(verify(request), GO_AK, 'go');

    const url = `${BASE}/scripts/daily%20report/instances/inst-1?${goQueryString([
      ['b', 'two words'],
      ['a', '1'],
      ['a', '0'],
    ])}`;
    assert.equal(url, `${BASE}/scripts/daily%20report/instances/inst-1?a=1&a=0&b=two+words`);
    const sent = signGo({
      method: 'GET',
      url,
      headers: { workspace: 'ws-1' },
      ak: GO_AK,
      sk: GO_SK,
      date: SIGNED_AT,
      projectId: PROJECT,
    });
    assert.equal(sent['Authorization'], authorization);
  });

  it('gophertelekomcloud style: POST without body signs an empty query and hashes the encoded query', () => {
    // Same headers and keys as above; POST …/instances/inst-1/stop?b=x+y&a=1, no body.
    // CanonicalQueryString = '' ; HashedPayload = sha256(url.Values.Encode()) = sha256('a=1&b=x+y').
    const payload = sha256('a=1&b=x+y');
    assert.equal(payload, '22915b1319465972cfbc8cd6d3ee33d36411ad61996d358aef9b6b2950ef9b86');
    const canonical = [
      'POST',
      `/v1/${PROJECT}/scripts/daily%20report/instances/inst-1/stop/`,
      '',
      'accept:application/json',
      'host:127.0.0.1:8080',
      'user-agent:golangsdk/2.0.0',
      'workspace:ws-1',
      'x-sdk-date:20240102T030405Z',
      '',
      'accept;host;user-agent;workspace;x-sdk-date',
      payload,
    ].join('\n');
    const stringToSign = `SDK-HMAC-SHA256\n20240102T030405Z\n20240102///sdk_request\n${sha256(canonical)}`;
    assert.equal(sha256(canonical), 'e7cea36d7f87b2847bcdc20bfcbdf2fa2312ea47f3131230fd1a13a8adcbccbd');
    let key = hmac(`SDK${GO_SK}`, '20240102');
    for (const step of ['', '', 'sdk_request']) key = hmac(key, step);
    const signature = hmac(key, stringToSign).toString('hex');
    assert.equal(signature, '4269f0f4aafef828c7539835888e6da2deff7bb85ecd6fe0c5c91609b91f8a4e');

    const request: SignedRequest = {
      method: 'POST',
      rawUrl: `/v1/${PROJECT}/scripts/daily%20report/instances/inst-1/stop?b=x+y&a=1`,
      headers: {
        accept: 'application/json',
        host: '127.0.0.1:8080',
        'user-agent': 'golangsdk/2.0.0',
        workspace: 'ws-1',
        'x-sdk-date': '20240102T030405Z',
        authorization:
          `SDK-HMAC-SHA256 Credential=${GO_AK}/20240102///sdk_request, ` +
          `SignedHeaders=accept;host;user-agent;workspace;x-sdk-date, Signature=${signature}`,
      },
      body: Buffer.alloc(0),
    };
    assertOk(verify(request), GO_AK, 'go');
  });
});

// -------------------------------------------------------------------------------------------------
// (b) Round trips through the independent helper signers.

const QUERY: Array<[string, string]> = [
  ['name', 'daily report'],
  ['tag', 'b'],
  ['tag', 'a'],
  ['limit', '10'],
  ['Zeta', 'z'],
  ['q', 'café ☕ 𝄞'],
  ['odd', 'x+y&z=1/2'],
  ['empty', ''],
];
const SCRIPT = encodeURIComponent('daily report/é+%(v2)');
const JSON_BODY = JSON.stringify({ params: { day: '2024-01-01', label: 'naïve ☃' } });

describe('round trips: requests signed by the helper signers verify', () => {
  it('GET with several keys, a repeated key and space/unicode values', () => {
    assertOk(
      verify(py({ method: 'GET', url: `${BASE}/scripts?${pythonQueryString(QUERY)}` })),
      PY_AK,
      'python',
    );
    assertOk(verify(go({ method: 'GET', url: `${BASE}/scripts?${goQueryString(QUERY)}` })), GO_AK, 'go');
  });

  it('the wire query forms differ as the clients do (%20 vs +)', () => {
    assert.match(pythonQueryString(QUERY), /name=daily%20report/);
    assert.match(goQueryString(QUERY), /name=daily\+report/);
  });

  it('a PY query received in another order still verifies (the server sorts)', () => {
    const request = py({ method: 'GET', url: `${BASE}/scripts?${pythonQueryString(QUERY)}` });
    const [path, query = ''] = request.rawUrl.split('?');
    const shuffled = query.split('&').reverse().join('&');
    assertOk(verify({ ...request, rawUrl: `${path}?${shuffled}` }), PY_AK, 'python');
  });

  it('POST with a JSON body (the Go client appends a newline)', () => {
    const url = `${BASE}/scripts/${SCRIPT}/execute`;
    assertOk(verify(py({ method: 'POST', url, body: JSON_BODY })), PY_AK, 'python');
    const request = go({ method: 'POST', url, body: `${JSON_BODY}\n` });
    assert.equal(request.sent['Content-Type'], 'application/json');
    assertOk(verify(request), GO_AK, 'go');
  });

  it('POST without body (Go: empty canonical query, payload = hash of the encoded query)', () => {
    const pairs: Array<[string, string]> = [
      ['force', 'true'],
      ['note', 'a b'],
    ];
    const goRequest = go({
      method: 'POST',
      url: `${BASE}/scripts/${SCRIPT}/instances/i-1/stop?${goQueryString(pairs)}`,
    });
    assert.equal(goRequest.sent['Content-Type'], undefined);
    assertOk(verify(goRequest), GO_AK, 'go');
    assertOk(
      verify(go({ method: 'POST', url: `${BASE}/scripts/${SCRIPT}/instances/i-1/stop` })),
      GO_AK,
      'go',
    );
    const pyRequest = py({
      method: 'POST',
      url: `${BASE}/scripts/${SCRIPT}/instances/i-1/stop?${pythonQueryString(pairs)}`,
    });
    assertOk(verify(pyRequest), PY_AK, 'python');
  });

  it('DELETE with a {} body', () => {
    const url = `${BASE}/scripts/${SCRIPT}`;
    assertOk(verify(py({ method: 'DELETE', url, body: '{}' })), PY_AK, 'python');
    assertOk(verify(go({ method: 'DELETE', url, body: '{}\n' })), GO_AK, 'go');
  });

  it('a script name that needs percent-encoding (space, slash, unicode, +, %, parentheses)', () => {
    const url = `${BASE}/scripts/${SCRIPT}`;
    assert.match(url, /daily%20report%2F%C3%A9%2B%25\(v2\)$/);
    assertOk(verify(py({ method: 'GET', url })), PY_AK, 'python');
    assertOk(verify(go({ method: 'GET', url })), GO_AK, 'go');
  });

  it('the workspace header is signed by both; X-Project-Id signed by PY only', () => {
    const pyRequest = py({
      method: 'GET',
      url: `${BASE}/scripts`,
      headers: { workspace: 'ws-42' },
      projectId: PROJECT,
    });
    const pyAuth = parseAuthorization(authorizationOf(pyRequest));
    assert.ok(pyAuth?.signedHeaders.includes('workspace'));
    assert.ok(pyAuth?.signedHeaders.includes('x-project-id'));
    assertOk(verify(pyRequest), PY_AK, 'python');

    const goRequest = go({
      method: 'GET',
      url: `${BASE}/scripts`,
      headers: { workspace: 'ws-42' },
      projectId: PROJECT,
    });
    const goAuth = parseAuthorization(authorizationOf(goRequest));
    assert.ok(goAuth?.signedHeaders.includes('workspace'));
    assert.equal(goAuth?.signedHeaders.includes('x-project-id'), false);
    assert.equal(goRequest.headers['x-project-id'], PROJECT);
    assertOk(verify(goRequest), GO_AK, 'go');
  });

  it('a non-ASCII header value (Node decodes it as Latin-1; the verifier uses the UTF-8 bytes)', () => {
    const request = py({ method: 'GET', url: `${BASE}/scripts`, headers: { 'X-Note': 'héllo ✓' } });
    assert.equal(request.headers['x-note'], Buffer.from('héllo ✓').toString('latin1'));
    assertOk(verify(request), PY_AK, 'python');
  });

  it('Go collapses whitespace runs inside signed header values', () => {
    const request = go({
      method: 'GET',
      url: `${BASE}/scripts`,
      headers: { 'User-Agent': 'golangsdk/2.0.0  terraform   1.5' },
    });
    assertOk(verify(request), GO_AK, 'go');
  });

  it('Go with a region and service in the scope', () => {
    const request = go({ method: 'GET', url: `${BASE}/scripts`, region: 'eu-de', service: 'dlf' });
    assert.match(
      authorizationOf(request),
      /Credential=GOTESTAK0000000000\/20240102\/eu-de\/dlf\/sdk_request,/,
    );
    assertOk(verify(request), GO_AK, 'go');
  });

  it('a signed X-Sdk-Content-Sha256 equal to the body hash, or UNSIGNED-PAYLOAD on a raw-body route, is honoured', () => {
    const url = `${BASE}/scripts`;
    const hashed = py({
      method: 'POST',
      url,
      body: JSON_BODY,
      headers: { 'X-Sdk-Content-Sha256': sha256(JSON_BODY) },
    });
    assertOk(verify(hashed), PY_AK, 'python');
    const unsigned = py({
      method: 'POST',
      url,
      body: 'a=1',
      headers: { 'Content-Type': 'text/plain', 'X-Sdk-Content-Sha256': 'UNSIGNED-PAYLOAD' },
    });
    assertOk(verifyRawBodyRoute(unsigned), PY_AK, 'python');
  });

  it('dates within the skew on either side verify', () => {
    const request = go({ method: 'GET', url: `${BASE}/scripts` });
    assertOk(verify(request, new Date(SIGNED_AT.getTime() + 14 * 60 * 1000)), GO_AK, 'go');
    assertOk(verify(request, new Date(SIGNED_AT.getTime() - 14 * 60 * 1000)), GO_AK, 'go');
  });

  it('an upper-case hex signature is accepted', () => {
    const request = py({ method: 'GET', url: `${BASE}/scripts` });
    const auth = authorizationOf(request).replace(
      /Signature=([0-9a-f]+)/,
      (_, s: string) => `Signature=${s.toUpperCase()}`,
    );
    assertOk(verify(withHeaders(request, { authorization: auth })), PY_AK, 'python');
  });
});

// -------------------------------------------------------------------------------------------------
// (c) Rejections.

const STYLES = [
  ['python', py],
  ['go', go],
] as const;

describe('huaweicloud-sdk-go-v3 (Access= style, host not signed)', () => {
  it('known answer: GET with the dgc v1 header set', () => {
    // Vector:
    //   GET http://127.0.0.1:8080/v1/<PROJECT>/scripts?limit=10&offset=0  (Go sends keys sorted)
    //   headers set before signing: workspace: ws-1, User-Agent: huaweicloud-usdk-go/3.0,
    //     Content-Type: application/json (never signed), X-Project-Id: <PROJECT>, X-Sdk-Date
    //   Host is added by the HTTP client after signing.
    const canonical = [
      'GET',
      `/v1/${PROJECT}/scripts/`,
      'limit=10&offset=0',
      'user-agent:huaweicloud-usdk-go/3.0',
      'workspace:ws-1',
      `x-project-id:${PROJECT}`,
      'x-sdk-date:20240102T030405Z',
      '',
      'user-agent;workspace;x-project-id;x-sdk-date',
      sha256(''),
    ].join('\n');
    const signature = hmac(
      PY_SK,
      `SDK-HMAC-SHA256\n20240102T030405Z\n${sha256(Buffer.from(canonical, 'utf8'))}`,
    ).toString('hex');
    const request = goV3({
      method: 'GET',
      url: `${BASE}/scripts?${huaweiGoV3QueryString([
        ['offset', '0'],
        ['limit', '10'],
      ])}`,
      headers: { workspace: 'ws-1' },
      contentType: 'application/json',
      projectId: PROJECT,
    });
    assert.equal(
      authorizationOf(request),
      `SDK-HMAC-SHA256 Access=${PY_AK}, SignedHeaders=user-agent;workspace;x-project-id;x-sdk-date, Signature=${signature}`,
    );
    assertOk(verify(request), PY_AK, 'python');
  });

  it('create, get, execute and stop as the dgc v1 client sends them verify', () => {
    const calls: Parameters<typeof goV3>[0][] = [
      { method: 'POST', url: `${BASE}/scripts`, body: JSON_BODY },
      { method: 'GET', url: `${BASE}/scripts/daily%20report`, contentType: 'application/json' },
      { method: 'POST', url: `${BASE}/scripts/daily%20report/execute`, body: JSON_BODY },
      {
        method: 'POST',
        url: `${BASE}/scripts/s1/instances/0123456789abcdef/stop`,
        headers: { workspace: 'ws-1' },
      },
      {
        method: 'GET',
        url: `${BASE}/scripts?${huaweiGoV3QueryString([
          ['scriptName', 'a b'],
          ['tag', 'z'],
          ['tag', 'y'],
          ['empty', ''],
        ])}`,
        contentType: 'application/json',
      },
    ];
    for (const call of calls) {
      const request = goV3({ ...call, projectId: PROJECT });
      assert.doesNotMatch(authorizationOf(request), /host/i);
      assertOk(verify(request), PY_AK, 'python');
    }
  });

  it('still binds method, path, query, body and date', () => {
    const request = goV3({ method: 'POST', url: `${BASE}/scripts/s1/execute?x=1`, body: JSON_BODY });
    assertRejected(verify({ ...request, method: 'PUT' }), 'signature mismatch');
    assertRejected(verify({ ...request, rawUrl: request.rawUrl.replace('s1', 's2') }), 'signature mismatch');
    assertRejected(
      verify({ ...request, rawUrl: request.rawUrl.replace('x=1', 'x=2') }),
      'signature mismatch',
    );
    assertRejected(verify({ ...request, body: Buffer.from('{"params":{}}') }), 'signature mismatch');
    assertRejected(
      verify(withHeaders(request, { 'x-sdk-date': sdkDate(new Date(SIGNED_AT.getTime() + 1000)) })),
      'signature mismatch',
    );
    // The host is not covered: the same request addressed to another name still verifies.
    assertOk(verify(withHeaders(request, { host: 'elsewhere.example:443' })), PY_AK, 'python');
  });
});

describe('rejections', () => {
  for (const [style, sign] of STYLES) {
    describe(`${style} style`, () => {
      const url = `${BASE}/scripts/${SCRIPT}/execute?${
        style === 'python'
          ? pythonQueryString([
              ['a', '1'],
              ['b', 'two words'],
            ])
          : goQueryString([
              ['a', '1'],
              ['b', 'two words'],
            ])
      }`;
      const body = style === 'python' ? JSON_BODY : `${JSON_BODY}\n`;
      const signed = () => sign({ method: 'POST', url, body, headers: { workspace: 'ws-1' } });

      it('verifies unaltered (control)', () => {
        assert.equal(verify(signed()).ok, true);
      });

      it('wrong SK', () => {
        assertRejected(
          verify(sign({ method: 'POST', url, body, sk: 'not-the-secret' })),
          'signature mismatch',
        );
      });

      it('body altered by one byte', () => {
        const request = signed();
        const tampered = Buffer.from(request.body);
        tampered[10] = (tampered[10] ?? 0) ^ 1;
        assertRejected(verify({ ...request, body: tampered }), 'signature mismatch');
      });

      it('path altered', () => {
        const request = signed();
        assertRejected(
          verify({ ...request, rawUrl: request.rawUrl.replace('/execute', '/executf') }),
          'signature mismatch',
        );
        assertRejected(
          verify({ ...request, rawUrl: request.rawUrl.replace('/execute?', '/execute/x?') }),
          'signature mismatch',
        );
      });

      it('query value altered', () => {
        const request = signed();
        assertRejected(
          verify({ ...request, rawUrl: request.rawUrl.replace('a=1', 'a=2') }),
          'signature mismatch',
        );
      });

      it('query parameter added', () => {
        const request = signed();
        assertRejected(verify({ ...request, rawUrl: `${request.rawUrl}&c=3` }), 'signature mismatch');
      });

      it('stale date (16 min) and future date (16 min)', () => {
        const request = signed();
        assertRejected(
          verify(request, new Date(SIGNED_AT.getTime() + 16 * 60 * 1000)),
          'X-Sdk-Date outside the allowed skew',
        );
        assertRejected(
          verify(request, new Date(SIGNED_AT.getTime() - 16 * 60 * 1000)),
          'X-Sdk-Date outside the allowed skew',
        );
      });

      it('unknown AK', () => {
        assertRejected(verify(sign({ method: 'POST', url, body, ak: 'NOBODY' })), 'unknown access key');
      });

      it('a signed header missing from the request', () => {
        const request = signed();
        assertRejected(
          verify(withHeaders(request, { workspace: undefined })),
          'signed header workspace is missing from the request',
        );
      });

      it('a signed header altered', () => {
        assertRejected(verify(withHeaders(signed(), { workspace: 'ws-2' })), 'signature mismatch');
        assertRejected(verify(withHeaders(signed(), { host: 'evil.example:8080' })), 'signature mismatch');
      });

      it('X-Sdk-Date altered (still in the skew)', () => {
        assertRejected(
          verify(withHeaders(signed(), { 'x-sdk-date': '20240102T030406Z' })),
          'signature mismatch',
        );
      });

      it('method altered', () => {
        assertRejected(verify({ ...signed(), method: 'PUT' }), 'signature mismatch');
      });

      it('signature of a different length, or not hex', () => {
        const request = signed();
        const auth = authorizationOf(request);
        const signature = /Signature=([0-9a-f]+)/.exec(auth)?.[1] ?? '';
        for (const bad of [signature.slice(0, -2), `${signature}a`, `${signature}00`, '', 'zz'.repeat(32)]) {
          const header = auth.replace(`Signature=${signature}`, `Signature=${bad}`);
          const result = verify(withHeaders(request, { authorization: header }));
          assert.equal(result.ok, false, bad);
          if (bad !== '') assertRejected(result, 'signature mismatch');
          else assertRejected(result, 'malformed Authorization header');
        }
      });

      it('an unsigned X-Sdk-Content-Sha256 cannot vouch for a replaced body', () => {
        const request = signed();
        const replaced = Buffer.from('{"params":{"evil":true}}');
        const forged = withHeaders({ ...request, body: replaced }, { 'x-sdk-content-sha256': sha256(body) });
        assertRejected(verify(forged), 'signature mismatch');
      });
    });
  }

  it('Go: a POST without body whose query is altered or extended', () => {
    const request = go({
      method: 'POST',
      url: `${BASE}/scripts/s/instances/i/stop?${goQueryString([['a', '1']])}`,
    });
    assert.equal(verify(request).ok, true);
    assertRejected(
      verify({ ...request, rawUrl: request.rawUrl.replace('a=1', 'a=2') }),
      'signature mismatch',
    );
    assertRejected(verify({ ...request, rawUrl: `${request.rawUrl}&b=2` }), 'signature mismatch');
  });

  it('Go: a later value of a repeated key is not covered (protocol limitation: first value only)', () => {
    const request = go({ method: 'GET', url: `${BASE}/scripts?${goQueryString([['a', '1']])}` });
    assertOk(verify({ ...request, rawUrl: `${request.rawUrl}&a=2` }), GO_AK, 'go');
  });

  it('a signed X-Sdk-Content-Sha256 that does not match the body', () => {
    const request = py({
      method: 'POST',
      url: `${BASE}/scripts`,
      body: JSON_BODY,
      headers: { 'X-Sdk-Content-Sha256': sha256('other') },
    });
    assertRejected(verify(request), 'X-Sdk-Content-Sha256 does not match the body');
  });

  it('Go: scope date different from the X-Sdk-Date date', () => {
    const request = go({ method: 'GET', url: `${BASE}/scripts` });
    const auth = authorizationOf(request).replace('/20240102//', '/20240101//');
    assertRejected(
      verify(withHeaders(request, { authorization: auth })),
      'credential scope date does not match X-Sdk-Date',
    );
  });

  it('Go: a request signed just before midnight verifies with its own scope date', () => {
    const date = new Date('2024-01-01T23:59:59Z');
    const request = go({ method: 'GET', url: `${BASE}/scripts`, date });
    assert.match(authorizationOf(request), /\/20240101\/\/\/sdk_request/);
    assertOk(verify(request, new Date('2024-01-02T00:01:00Z')), GO_AK, 'go');
  });

  it('missing or malformed X-Sdk-Date', () => {
    const request = py({ method: 'GET', url: `${BASE}/scripts` });
    assertRejected(verify(withHeaders(request, { 'x-sdk-date': undefined })), 'missing X-Sdk-Date header');
    for (const bad of [
      '2024-01-02T03:04:05Z',
      '20240102T030405',
      '20240230T030405Z',
      '20240102T250405Z',
      '',
      'now',
    ]) {
      assertRejected(
        verify(withHeaders(request, { 'x-sdk-date': bad })),
        'malformed X-Sdk-Date (expected YYYYMMDDTHHMMSSZ)',
      );
    }
  });

  it('X-Sdk-Date must be signed in both styles, Host in the Credential= style', () => {
    const dropSigned = (request: SignedRequest, drop: string) =>
      withHeaders(request, {
        authorization: authorizationOf(request).replace(
          /SignedHeaders=([^,]+)/,
          (_, list: string) =>
            `SignedHeaders=${list
              .split(';')
              .filter((n) => n !== drop)
              .join(';')}`,
        ),
      });
    const python = py({ method: 'GET', url: `${BASE}/scripts` });
    const telekom = go({ method: 'GET', url: `${BASE}/scripts` });
    assertRejected(verify(dropSigned(python, 'x-sdk-date')), 'X-Sdk-Date must be signed');
    assertRejected(verify(dropSigned(telekom, 'x-sdk-date')), 'X-Sdk-Date must be signed');
    assertRejected(verify(dropSigned(telekom, 'host')), 'Host must be signed');
    // Access= style (Python SDK, huaweicloud-sdk-go-v3) may leave host out; this signature covered
    // it, so the shortened list no longer matches the signature.
    assertRejected(verify(dropSigned(python, 'host')), 'signature mismatch');
  });

  it('UNSIGNED-PAYLOAD is refused on JSON requests, without a content type, and off raw-body routes', () => {
    const zip = Buffer.from('PK\u0003\u0004 not really a zip');
    const upload = goV3({
      method: 'POST',
      url: `${BASE}/connections/import`,
      body: zip,
      contentType: 'application/zip',
    });
    assert.equal(upload.sent['X-Sdk-Content-Sha256'], 'UNSIGNED-PAYLOAD');
    assertOk(verifyRawBodyRoute(upload), PY_AK, 'python');
    const refused = 'UNSIGNED-PAYLOAD is accepted only for non-JSON uploads';
    // The Go SDK does not sign Content-Type: an attacker can relabel the body as JSON and swap it.
    const swapped = {
      ...withHeaders(upload, { 'content-type': 'application/json' }),
      body: Buffer.from('{}'),
    };
    assertRejected(verifyRawBodyRoute(swapped), refused);
    assertRejected(verifyRawBodyRoute(withHeaders(upload, { 'content-type': undefined })), refused);
    assertRejected(verify(upload), refused);
    // A client that leaves a JSON body unsigned is refused even on a raw-body route.
    const jsonUnsigned = py({
      method: 'POST',
      url: `${BASE}/scripts`,
      body: JSON_BODY,
      headers: { 'X-Sdk-Content-Sha256': 'UNSIGNED-PAYLOAD' },
    });
    assertRejected(verifyRawBodyRoute(jsonUnsigned), refused);
  });

  it('missing, malformed and unsupported Authorization headers', () => {
    const request = py({ method: 'GET', url: `${BASE}/scripts` });
    const auth = authorizationOf(request);
    assertRejected(
      verify(withHeaders(request, { authorization: undefined })),
      'missing Authorization header',
    );
    assertRejected(verify(withHeaders(request, { authorization: '  ' })), 'missing Authorization header');
    for (const bad of [
      'SDK-HMAC-SHA256',
      'SDK-HMAC-SHA256 ',
      auth.replace('Access=', 'Acces='),
      auth.replace(/, Signature=[0-9a-f]+/, ''),
      auth.replace(/SignedHeaders=[^,]+, /, ''),
      auth.replace('SignedHeaders=', 'SignedHeaders=;'),
      auth.replace('SignedHeaders=', 'SignedHeaders=Host;'),
      `${auth}, Access=${PY_AK}`,
      `${auth}, Credential=${PY_AK}/20240102///sdk_request`,
      auth.replace(`Access=${PY_AK}`, 'Access='),
      'SDK-HMAC-SHA256 Credential=AK/20240102///other, SignedHeaders=host;x-sdk-date, Signature=00',
      'SDK-HMAC-SHA256 Credential=AK/2024-01-02///sdk_request, SignedHeaders=host;x-sdk-date, Signature=00',
      'SDK-HMAC-SHA256 Credential=AK/20240102//sdk_request, SignedHeaders=host;x-sdk-date, Signature=00',
      'SDK-HMAC-SHA256 Credential=/20240102///sdk_request, SignedHeaders=host;x-sdk-date, Signature=00',
      'SDK-HMAC-SHA256 garbage',
    ]) {
      assertRejected(verify(withHeaders(request, { authorization: bad })), 'malformed Authorization header');
      assert.equal(parseAuthorization(bad), undefined, bad);
    }
    for (const bad of [
      auth.replace('SDK-HMAC-SHA256', 'SDK-HMAC-SM3'),
      auth.replace('SDK-HMAC-SHA256', 'sdk-hmac-sha256'),
      'V11-HMAC-SHA256 Credential=AK/20240102/eu-de/dlf, SignedHeaders=host;x-sdk-date, Signature=00',
      'Bearer abc',
      'Basic dXNlcjpwYXNz',
    ]) {
      assertRejected(verify(withHeaders(request, { authorization: bad })), 'unsupported algorithm');
      assert.equal(parseAuthorization(bad), undefined, bad);
    }
  });

  it('never throws on hostile input', () => {
    const request = go({ method: 'POST', url: `${BASE}/scripts`, body: '{}\n' });
    const variants: SignedRequest[] = [
      { ...request, rawUrl: '/v1/%zz/%/%e2%82/scripts?%=%&&=&a==b&%zz=1&+=+' },
      { ...request, rawUrl: '' },
      { ...request, rawUrl: '*' },
      { ...request, rawUrl: 'http://host:1/v1/p/scripts?x=1' },
      { ...request, rawUrl: '/\u20ac/\ud800?\u20ac=\udfff' },
      { ...request, method: '' },
      withHeaders(request, { host: '\u00ff\u00fe\u20ac' }),
      { ...request, headers: { ...request.headers, authorization: ['a', 'b'], 'x-sdk-date': ['x'] } },
      { ...request, headers: {} },
    ];
    for (const variant of variants) {
      const result = verify(variant);
      assert.equal(typeof result.ok, 'boolean');
      assert.equal(result.ok, false);
    }
    assert.equal(
      verifySignature(request, () => GO_SK, { now: new Date(Number.NaN), maxSkewMs: SKEW }).ok,
      false,
    );
  });
});

describe('parseAuthorization', () => {
  it('parses both styles', () => {
    assert.deepEqual(
      parseAuthorization('SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=abcd'),
      { style: 'python', accessKey: 'AK1', signedHeaders: ['host', 'x-sdk-date'], signature: 'abcd' },
    );
    assert.deepEqual(
      parseAuthorization(
        'SDK-HMAC-SHA256 Credential=AK2/20240102/eu-de/dlf/sdk_request, SignedHeaders=host;x-sdk-date, Signature=ef',
      ),
      {
        style: 'go',
        accessKey: 'AK2',
        scopeDate: '20240102',
        region: 'eu-de',
        service: 'dlf',
        signedHeaders: ['host', 'x-sdk-date'],
        signature: 'ef',
      },
    );
    assert.deepEqual(
      parseAuthorization(
        'SDK-HMAC-SHA256 Credential=AK2/20240102///sdk_request,SignedHeaders=host,Signature=ef',
      ),
      {
        style: 'go',
        accessKey: 'AK2',
        scopeDate: '20240102',
        region: '',
        service: '',
        signedHeaders: ['host'],
        signature: 'ef',
      },
    );
  });

  it('round-trips what the helper signers emit', () => {
    const pyHeaders = signPython({
      method: 'GET',
      url: `${BASE}/scripts`,
      ak: PY_AK,
      sk: PY_SK,
      date: SIGNED_AT,
    });
    const goHeaders = signGo({
      method: 'GET',
      url: `${BASE}/scripts`,
      ak: GO_AK,
      sk: GO_SK,
      date: SIGNED_AT,
    });
    assert.equal(parseAuthorization(pyHeaders['Authorization'] ?? '')?.style, 'python');
    const goAuth = parseAuthorization(goHeaders['Authorization'] ?? '');
    assert.equal(goAuth?.style, 'go');
    assert.equal(goAuth?.style === 'go' ? goAuth.scopeDate : '', sdkDate(SIGNED_AT).slice(0, 8));
  });
});
