/** The `waitSeconds` extension of the result endpoint: one request that answers when the run settles. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertError } from '../helpers/assertions.js';
import { startTestServer, type ApiClient, type TestServer } from '../helpers/server.js';

describe('long-polling the instance result', () => {
  let server: TestServer;
  let api: ApiClient;
  before(async () => {
    server = await startTestServer({ maxConcurrentRuns: 1 });
    api = server.client();
    await api.createScript({
      name: 'short',
      type: 'Shell',
      content: 'sleep 0.3; echo done',
      connectionName: 'local',
    });
    await api.createScript({ name: 'long', type: 'Shell', content: 'sleep 300', connectionName: 'local' });
  });
  after(() => server.close());

  it('one request with waitSeconds returns the settled result', async () => {
    const id = await api.execute('short');
    const response = await api.request('GET', api.path(`/short/instances/${id}?waitSeconds=30`));
    assert.equal(response.status, 200);
    assert.equal(response.json.status, 'FINISHED');
    assert.deepEqual(response.json.results[0].rows, [['done']]);
  });

  it('a queued instance stopped while a long poll waits wakes the poll', async () => {
    const running = await api.execute('long');
    const queued = await api.execute('short');
    const poll = api.request('GET', api.path(`/short/instances/${queued}?waitSeconds=30`));
    assert.equal((await api.stop('short', queued)).status, 204);
    const response = await poll;
    assert.equal(response.json.detailedStatus, 'STOPPED');
    assert.equal((await api.stop('long', running)).status, 204);
  });

  it('answers with the current state when the wait ends first, and rejects bad values', async () => {
    const id = await api.execute('long');
    const response = await api.request('GET', api.path(`/long/instances/${id}?waitSeconds=0.2`));
    assert.ok(['LAUNCHING', 'RUNNING'].includes(response.json.status), response.text);
    for (const bad of ['-1', '61', 'abc', '1e3']) {
      assertError(
        await api.request('GET', api.path(`/long/instances/${id}?waitSeconds=${bad}`)),
        400,
        'DLF.3051',
      );
    }
    assert.equal((await api.stop('long', id)).status, 204);
  });
});
