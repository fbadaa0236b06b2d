/**
 * Requests that reach a server while it shuts down (on a connection that is still busy) are
 * answered 503 with the DLF envelope (OPENDLF.0503) and `Connection: close`, not with fastify's
 * own body; a request already in progress is answered normally.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { waitForInstanceProcesses } from '../helpers/processes.js';
import { PROJECT, startTestServer } from '../helpers/server.js';

/** One raw connection: write requests at chosen moments, collect everything until it closes. */
async function rawConnection(url: string): Promise<{ write(raw: string): void; received: Promise<string> }> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const received = new Promise<string>((resolve, reject) => {
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', reject);
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { write: (raw) => socket.write(raw), received };
}

describe('requests during shutdown', () => {
  it('a request sent on a busy connection while the server drains gets the DLF 503 envelope', async () => {
    const server = await startTestServer({ drainTimeoutSeconds: 1 });
    const api = server.client();
    await api.createScript({ name: 'forever', type: 'Shell', content: 'sleep 300', connectionName: 'local' });
    const id = await api.execute('forever');
    await waitForInstanceProcesses(id, 1);

    const host = new URL(server.url).host;
    const longPoll = `GET /v1/${PROJECT}/scripts/forever/instances/${id}?waitSeconds=10 HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    const next = `GET /v1/${PROJECT}/scripts HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    const connection = await rawConnection(server.url);
    connection.write(longPoll);
    await new Promise((r) => setTimeout(r, 200)); // the long poll is waiting on the instance
    const closed = server.close();
    await new Promise((r) => setTimeout(r, 200)); // the server is closing, the connection busy
    connection.write(next);
    const text = await connection.received;
    await closed;

    const responses = text.split(/(?=HTTP\/1\.1 )/);
    assert.equal(responses.length, 2, text);
    // The long poll in progress is answered normally once the drain ended the instance.
    assert.match(responses[0]!, /^HTTP\/1\.1 200 /);
    assert.match(responses[0]!, /"detailedStatus":"ABORTED"/);
    // The request behind it arrived while the server was closing.
    assert.match(responses[1]!, /^HTTP\/1\.1 503 /);
    assert.match(responses[1]!, /connection: close/i);
    const body = JSON.parse(responses[1]!.slice(responses[1]!.indexOf('\r\n\r\n') + 4)) as Record<
      string,
      unknown
    >;
    assert.equal(body.error_code, 'OPENDLF.0503');
    assert.equal(typeof body.error_msg, 'string');
  });
});
