/**
 * Worker side of InstanceLoad (lib.ts): the API clients of the instances-per-second figure, on
 * their own thread so that their HTTP work does not share the measured server's event loop (in a
 * deployment the clients are other processes). For each `{ id, baseUrl, projectId, name, count,
 * clients }` request: `clients` lanes POST …/execute until `count` instances were submitted, while
 * one poller GETs them oldest first until each is terminal; answers the elapsed time from the first
 * POST to the last terminal status seen.
 */
import { parentPort } from 'node:worker_threads';
import { ApiClient } from '../test/helpers/server.js';
import type { LoadReply, LoadRequest } from './lib.js';

const sleep = (msec: number) => new Promise<void>((resolve) => setTimeout(resolve, msec));
const isTerminal = (status: unknown) => status === 'FINISHED' || status === 'FAILED';

/** `oneRequest`: each lane's execute waits for the outcome (`?waitSeconds=30`); no poller. */
async function executeAndWait(request: LoadRequest): Promise<Omit<LoadReply, 'id'>> {
  const client = new ApiClient(request.baseUrl, request.projectId);
  const path = client.path(`/${encodeURIComponent(request.name)}/execute?waitSeconds=30`);
  let failed = 0;
  let firstFailure: string | undefined;
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < request.count) {
      next++;
      const response = await client.request('POST', path, { body: {} });
      if (response.status !== 200) throw new Error(`execute failed: ${response.status} ${response.text}`);
      let status = response.json?.status as string | undefined;
      let text = response.text;
      if (!isTerminal(status)) {
        // Not settled within the wait: follow it with the long poll (a slow machine, not an error).
        const id = response.json?.instanceId as string;
        const path = client.path(`/${encodeURIComponent(request.name)}/instances/${id}?waitSeconds=30`);
        const followed = await client.request('GET', path);
        status = followed.json?.status as string | undefined;
        text = followed.text;
        if (!isTerminal(status)) throw new Error(`${id} not terminal after 60 s: ${text.slice(0, 200)}`);
      }
      if (status === 'FAILED') {
        failed++;
        firstFailure ??= text.slice(0, 200);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(request.clients, request.count) }, lane));
  const elapsedMs = performance.now() - t0;
  return { ok: true, elapsedMs, failed, ...(firstFailure === undefined ? {} : { firstFailure }) };
}

async function submitAndFollow(request: LoadRequest): Promise<Omit<LoadReply, 'id'>> {
  if (request.oneRequest === true) return executeAndWait(request);
  const client = new ApiClient(request.baseUrl, request.projectId);
  const ids: string[] = [];
  let submitError: Error | undefined;
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < request.count) {
      next++;
      ids.push(await client.execute(request.name));
    }
  };
  const submitted = Promise.all(Array.from({ length: Math.min(request.clients, request.count) }, lane)).catch(
    (error: unknown) => {
      submitError = error instanceof Error ? error : new Error(String(error));
    },
  );
  let failed = 0;
  let firstFailure: string | undefined;
  let polled = 0;
  const deadline = Date.now() + 120_000;
  while (polled < request.count) {
    if (submitError !== undefined) throw submitError;
    if (Date.now() > deadline)
      throw new Error(`${request.name}: ${request.count - polled} instances not terminal after 120 s`);
    const id = ids[polled];
    if (id === undefined) {
      await sleep(1);
      continue;
    }
    const response = await client.result(request.name, id);
    const status = response.json?.status as string | undefined;
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
  await submitted;
  return { ok: true, elapsedMs, failed, ...(firstFailure === undefined ? {} : { firstFailure }) };
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
