/**
 * A silent cut of the link to the PostgreSQL store (issue 12, item 5): a node whose store sits
 * behind a TCP proxy that stops forwarding without resetting anything. Before the fix a GET sent
 * at the start hung as long as the link, later ones got 500, and /readyz did not answer at all.
 *
 * With the store deadlines (here storeConnectTimeoutMs = storeQueryTimeoutMs = 2000) every call
 * that needs the store answers 503 with the DLF envelope (OPENDLF.0504), /readyz answers 503 naming
 * the store, the LISTEN connection notices the dead link and is re-opened, and once the proxy
 * forwards again everything works. Outcomes are counted; the waits are generous deadlines only.
 */
import { until as waitUntil } from '../helpers/assertions.js';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createClusterDatabase,
  startNode,
  stopNode,
  type ClusterDatabase,
  type ClusterNode,
} from '../helpers/cluster.js';
import { ApiClient, PROJECT, tempDir } from '../helpers/server.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const NODE_ID = 'node-link';
/** Far above the bound the deadlines give (about 2 + 2 + 1 s); only a hang reaches it. */
const ANSWER_WITHIN_MS = 30_000;

/** A store cut plus recovery can take the deadlines several times over: wait generously. */
const until = <T>(what: string, probe: () => Promise<T | undefined>) => waitUntil(what, probe, 90_000, 100);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Answer {
  status: number;
  body: any;
}

/** One call with a generous deadline: `undefined` when no answer came within it. */
async function call(url: string, method = 'GET', body?: unknown): Promise<Answer | undefined> {
  try {
    const response = await fetch(url, {
      method,
      signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { status: response.status, body: parsed };
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') return undefined;
    throw error;
  }
}

function isStoreUnavailable(answer: Answer | undefined): boolean {
  return (
    answer?.status === 503 &&
    answer.body?.error_code === 'OPENDLF.0504' &&
    typeof answer.body?.error_msg === 'string'
  );
}

describe('a silent cut of the link to the PostgreSQL store', () => {
  let db: ClusterDatabase;
  let proxy: TcpProxy;
  let node: ClusterNode;
  let configDir: string;

  /** The backend holding this node's id lock: its signal listener. */
  async function listenerPid(): Promise<number | undefined> {
    const { rows } = await db.admin.query<{ pid: number }>(
      `SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1`,
      [`opendlf node ${NODE_ID}`],
    );
    return rows[0]?.pid;
  }

  before(async () => {
    db = await createClusterDatabase('opendlf_store_link');
    proxy = await startTcpProxy(5432);
    configDir = tempDir('opendlf-store-link-');
    const config = join(configDir, 'config.json');
    writeFileSync(config, JSON.stringify({ storeConnectTimeoutMs: 2_000, storeQueryTimeoutMs: 2_000 }));
    node = await startNode({
      storeUrl: `postgres://postgres@127.0.0.1:${proxy.port}/${db.name}`,
      nodeId: NODE_ID,
      args: ['--config', config],
    });
  });

  after(async () => {
    proxy?.resume();
    if (node) await stopNode(node);
    await proxy?.close();
    await db?.drop();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  });

  it('answers 503 OPENDLF.0504 while the link is silent, /readyz 503 naming the store, and recovers when it forwards again', async () => {
    const api = new ApiClient(node.url, PROJECT);
    await api.createScript({ name: 'hello', type: 'Shell', content: 'echo hello', connectionName: 'local' });
    const before = await api.execute('hello');
    assert.equal((await api.waitFor('hello', before)).json.status, 'FINISHED');
    const listenerBefore = await listenerPid();
    assert.ok(listenerBefore !== undefined, 'precondition: the listener holds the node id lock');

    proxy.pause();
    const script = `${node.url}${api.path('/hello')}`;
    const calls: [string, Promise<Answer | undefined>][] = [];
    // The recipe's first GET, sent at the start of the cut.
    calls.push(['GET script (at the cut)', call(script)]);
    await sleep(1_000);
    // More than the pool holds at once (10), so some wait for a connection and some open new ones.
    for (let i = 0; i < 12; i++) calls.push([`GET script #${i}`, call(script)]);
    calls.push(['execute', call(`${script}/execute`, 'POST', {})]);
    calls.push(['GET instance', call(`${script}/instances/${before}`)]);
    calls.push(['list scripts', call(`${node.url}${api.path()}`)]);
    const readiness = call(`${node.url}/readyz`);
    const answers = await Promise.all(calls.map(([, answer]) => answer));
    const unanswered = calls.filter((_c, i) => answers[i] === undefined).map(([name]) => name);
    assert.deepEqual(unanswered, [], `calls without an answer within ${ANSWER_WITHIN_MS} ms`);
    const wrong = calls
      .map(([name], i) => [name, answers[i]] as const)
      .filter(([, answer]) => !isStoreUnavailable(answer))
      .map(([name, answer]) => `${name}: ${JSON.stringify(answer)}`);
    assert.deepEqual(wrong, [], 'every call during the cut answers 503 OPENDLF.0504');

    const ready = await readiness;
    assert.ok(ready !== undefined, `/readyz did not answer within ${ANSWER_WITHIN_MS} ms`);
    assert.equal(ready.status, 503);
    assert.equal(ready.body.ready, false);
    const store = (ready.body.checks as { name: string; ok: boolean; detail?: string }[]).find(
      (check) => check.name === 'store',
    );
    assert.equal(store?.ok, false, JSON.stringify(ready.body));

    // Calls sent well into the cut (the recipe's "later GETs") answer the same way.
    await sleep(5_000);
    const later = await Promise.all([call(script), call(script), call(`${node.url}/readyz`)]);
    assert.ok(isStoreUnavailable(later[0]) && isStoreUnavailable(later[1]), JSON.stringify(later));
    assert.equal(later[2]?.status, 503, JSON.stringify(later[2]));

    proxy.resume();
    const back = await until('GET script to answer 200 again', async () => {
      const answer = await call(script);
      return answer?.status === 200 ? answer : undefined;
    });
    assert.equal(back.body.name, 'hello');
    const after = await until('execute to be accepted again', async () => {
      const answer = await call(`${script}/execute`, 'POST', {});
      return answer?.status === 200 ? (answer.body.instanceId as string) : undefined;
    });
    assert.equal((await api.waitFor('hello', after)).json.status, 'FINISHED');
    await until('/readyz to answer 200 again', async () =>
      (await call(`${node.url}/readyz`))?.status === 200 ? true : undefined,
    );
    // The listener noticed the dead link: a new session took the node id lock (LISTEN before it).
    const listenerAfter = await until('the signal listener to be re-opened', async () => {
      const pid = await listenerPid();
      return pid !== undefined && pid !== listenerBefore ? pid : undefined;
    });
    assert.notEqual(listenerAfter, listenerBefore);
  });
});
