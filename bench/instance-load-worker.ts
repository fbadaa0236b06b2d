/**
 * Worker side of InstanceLoad (lib.ts): the API clients of the instances-per-second figure, on
 * their own thread so that their HTTP work does not share the measured server's event loop (in a
 * deployment the clients are other processes). For each `{ id, baseUrl, projectId, name, count,
 * clients }` request: `clients` lanes POST …/execute until `count` instances were submitted, while
 * one poller GETs them oldest first until each is terminal; answers the elapsed time from the first
 * POST to the last terminal status seen.
 *
 * The clients speak plain keep-alive `node:http` (LeanClient), not fetch: the thread shares the
 * machine's cores with the measured server, and its own CPU is work the bare loop never does.
 */
import http from 'node:http';
import { parentPort } from 'node:worker_threads';
import { ApiClient } from '../test/helpers/server.js';
import type { LoadReply, LoadRequest } from './lib.js';

interface LeanResponse {
  readonly status: number;
  readonly text: string;
  readonly json: { status?: string; instanceId?: string } | undefined;
}

/**
 * A keep-alive `node:http` client for the load, one socket per lane. With fetch (undici behind web
 * streams) this thread took 430-560 µs of CPU per one-request instance and V8's helper threads more
 * for its garbage; with this 120-210 µs, on a 2-core machine where that CPU is taken from the
 * measured server (scratch A/B, 3 × 3 batches of 1,500 DuckDB `SELECT 1`).
 */
class LeanClient {
  private readonly agent: http.Agent;
  private readonly url: URL;

  constructor(baseUrl: string, sockets: number) {
    this.url = new URL(baseUrl);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  }

  request(method: 'GET' | 'POST', path: string, body?: string): Promise<LeanResponse> {
    return new Promise((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = {};
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      const outgoing = http.request(
        { agent: this.agent, host: this.url.hostname, port: this.url.port, method, path, headers },
        (incoming) => {
          const chunks: Buffer[] = [];
          incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
          incoming.on('error', reject);
          incoming.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: LeanResponse['json'];
            try {
              json = text ? (JSON.parse(text) as LeanResponse['json']) : undefined;
            } catch {
              json = undefined;
            }
            resolve({ status: incoming.statusCode ?? 0, text, json });
          });
        },
      );
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

const sleep = (msec: number) => new Promise<void>((resolve) => setTimeout(resolve, msec));
const isTerminal = (status: unknown) => status === 'FINISHED' || status === 'FAILED';

/** `oneRequest`: each lane's execute waits for the outcome (`?waitSeconds=30`); no poller. */
async function executeAndWait(request: LoadRequest): Promise<Omit<LoadReply, 'id'>> {
  const paths = new ApiClient(request.baseUrl, request.projectId);
  const lanes = Math.min(request.clients, request.count);
  const lean = new LeanClient(request.baseUrl, lanes);
  const path = paths.path(`/${encodeURIComponent(request.name)}/execute?waitSeconds=30`);
  let failed = 0;
  let firstFailure: string | undefined;
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < request.count) {
      next++;
      const response = await lean.request('POST', path, '{}');
      if (response.status !== 200) throw new Error(`execute failed: ${response.status} ${response.text}`);
      let status = response.json?.status;
      let text = response.text;
      if (!isTerminal(status)) {
        // Not settled within the wait: follow it with the long poll (a slow machine, not an error).
        const id = response.json?.instanceId ?? '';
        const followed = await lean.request(
          'GET',
          paths.path(`/${encodeURIComponent(request.name)}/instances/${id}?waitSeconds=30`),
        );
        status = followed.json?.status;
        text = followed.text;
        if (!isTerminal(status)) throw new Error(`${id} not terminal after 60 s: ${text.slice(0, 200)}`);
      }
      if (status === 'FAILED') {
        failed++;
        firstFailure ??= text.slice(0, 200);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: lanes }, lane));
  } finally {
    lean.close();
  }
  const elapsedMs = performance.now() - t0;
  return { ok: true, elapsedMs, failed, ...(firstFailure === undefined ? {} : { firstFailure }) };
}

async function submitAndFollow(request: LoadRequest): Promise<Omit<LoadReply, 'id'>> {
  if (request.oneRequest === true) return executeAndWait(request);
  const paths = new ApiClient(request.baseUrl, request.projectId);
  const lanes = Math.min(request.clients, request.count);
  // One socket more than the submitting lanes: the poller's.
  const lean = new LeanClient(request.baseUrl, lanes + 1);
  const executePath = paths.path(`/${encodeURIComponent(request.name)}/execute`);
  const ids: string[] = [];
  let submitError: Error | undefined;
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < request.count) {
      next++;
      const response = await lean.request('POST', executePath, '{}');
      const id = response.json?.instanceId;
      if (response.status !== 200 || id === undefined) {
        throw new Error(`execute failed: ${response.status} ${response.text}`);
      }
      ids.push(id);
    }
  };
  const submitted = Promise.all(Array.from({ length: lanes }, lane)).catch((error: unknown) => {
    submitError = error instanceof Error ? error : new Error(String(error));
  });
  let failed = 0;
  let firstFailure: string | undefined;
  let polled = 0;
  const deadline = Date.now() + 120_000;
  try {
    while (polled < request.count) {
      if (submitError !== undefined) throw submitError;
      if (Date.now() > deadline)
        throw new Error(`${request.name}: ${request.count - polled} instances not terminal after 120 s`);
      const id = ids[polled];
      if (id === undefined) {
        await sleep(1);
        continue;
      }
      const response = await lean.request(
        'GET',
        paths.path(`/${encodeURIComponent(request.name)}/instances/${id}`),
      );
      const status = response.json?.status;
      if (isTerminal(status)) {
        if (status === 'FAILED') {
          failed++;
          firstFailure ??= response.text.slice(0, 200);
        }
        polled++;
        continue;
      }
      await sleep(2);
    }
    const elapsedMs = performance.now() - t0;
    return { ok: true, elapsedMs, failed, ...(firstFailure === undefined ? {} : { firstFailure }) };
  } finally {
    await submitted;
    lean.close();
  }
}

parentPort?.on('message', (request: LoadRequest) => {
  submitAndFollow(request).then(
    (reply) => parentPort?.postMessage({ id: request.id, ...reply } satisfies LoadReply),
    (error: unknown) =>
      parentPort?.postMessage({
        id: request.id,
        ok: false,
        elapsedMs: NaN,
        failed: 0,
        error: error instanceof Error ? error.message : String(error),
      } satisfies LoadReply),
  );
});
