/**
 * The HTTP duration histogram gives the registry exactly what prom-client's Histogram gives for the
 * same observations: the same text exposition (Prometheus and OpenMetrics) and the same JSON.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, Registry, type RegistryContentType } from 'prom-client';
import { RequestDurationHistogram } from '../../src/observability/request-duration-histogram.js';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15];
const NAME = 'opendlf_http_request_duration_seconds';
const HELP = 'HTTP request duration by route template and status.';

function pair(openMetrics: boolean) {
  const reference = new Registry<RegistryContentType>();
  const ours = new Registry<RegistryContentType>();
  if (openMetrics) {
    reference.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    ours.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  }
  const histogram = new Histogram({
    name: NAME,
    help: HELP,
    labelNames: ['method', 'route', 'status_code'],
    buckets: BUCKETS,
    registers: [reference],
  });
  const fast = new RequestDurationHistogram(NAME, HELP, BUCKETS, ours);
  return {
    reference,
    ours,
    fast,
    observe(method: string, route: string, statusCode: number, seconds: number) {
      histogram.observe({ method, route, status_code: String(statusCode) }, seconds);
      fast.observe(method, route, statusCode, seconds);
    },
  };
}

/** Every bucket edge, values between and beyond them, routes that need escaping, interleaved series. */
function observeMany(observe: (method: string, route: string, statusCode: number, seconds: number) => void) {
  const routes = ['/v1/:projectId/scripts', 'unmatched', '/v1/:projectId/scripts/:scriptName', 'a"b\\c\nd'];
  const values = [...BUCKETS, ...BUCKETS.map((b) => b * 1.0001), 0, 1e-9, 16, 3600];
  for (let i = 0; i < 2_000; i++) {
    observe(
      ['GET', 'POST', 'PUT', 'DELETE'][i % 4]!,
      routes[(i * 7) % routes.length]!,
      [200, 204, 400, 404, 500][(i * 13) % 5]!,
      values[(i * 3) % values.length]!,
    );
  }
}

describe('RequestDurationHistogram', () => {
  it('renders what prom-client renders, before and after observations', async () => {
    for (const openMetrics of [false, true]) {
      const { reference, ours, observe } = pair(openMetrics);
      assert.equal(await ours.metrics(), await reference.metrics());
      observeMany(observe);
      const text = await ours.metrics();
      assert.equal(text, await reference.metrics());
      assert.match(
        text,
        /^opendlf_http_request_duration_seconds_count\{method="GET",route="\/v1\/:projectId\/scripts",status_code="200"\} \d+$/m,
      );
      assert.deepEqual(await ours.getMetricsAsJSON(), await reference.getMetricsAsJSON());
    }
  });

  it('ignores a non-finite duration and starts over after reset', async () => {
    const { reference, ours, fast, observe } = pair(false);
    fast.observe('GET', '/x', 200, Number.NaN);
    assert.equal(await ours.metrics(), await reference.metrics());
    observe('GET', '/x', 200, 0.002);
    ours.resetMetrics();
    reference.resetMetrics();
    assert.equal(await ours.metrics(), await reference.metrics());
    observe('POST', '/y', 204, 0.2);
    assert.equal(await ours.metrics(), await reference.metrics());
  });
});
