/**
 * Prometheus metrics (prom-client) behind the runner's RunObserver and the HTTP layer's
 * HttpObserver ports. Names follow Prometheus conventions: `opendlf_…_total` counters,
 * `_seconds` histograms; process metrics come from prom-client's defaults with the same prefix.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { InstanceState } from '../domain/instance-state.js';
import type { HttpObserver } from '../http/http-observer.js';
import type { RunObserver } from '../runner/run-observer.js';
import { RequestDurationHistogram } from './request-duration-histogram.js';

/** Run and stop durations: sub-millisecond DuckDB interrupts up to day-long scripts. */
const RUN_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400,
];
const STOP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15];

export interface QueueGauges {
  /** Queued instances in the store (all nodes). */
  queuedCount(): Promise<number>;
  readonly activeCount: number;
}

export class PrometheusMetrics implements RunObserver, HttpObserver {
  readonly registry = new Registry();
  private readonly started: Counter<'engine'>;
  private readonly finished: Counter<'engine' | 'state'>;
  private readonly runDuration: Histogram<'engine'>;
  private readonly stopDuration: Histogram<'engine'>;
  private readonly queueWait: Histogram<'engine'>;
  private readonly queued: Counter<'engine'>;
  private readonly httpDuration: RequestDurationHistogram;
  private readonly storeErrors: Counter;
  private readonly reaped: Counter;
  private readonly fenced: Counter;
  private readonly internalErrors: Counter;

  /** Set once the supervisor exists (it takes this object as its observer). */
  private queue: QueueGauges | undefined;

  constructor() {
    const queue = () => this.queue;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'opendlf_' });
    this.queued = new Counter({
      name: 'opendlf_instances_queued_total',
      help: 'Executions accepted and queued.',
      labelNames: ['engine'],
      registers,
    });
    this.started = new Counter({
      name: 'opendlf_instances_started_total',
      help: 'Instances that got a run slot.',
      labelNames: ['engine'],
      registers,
    });
    this.finished = new Counter({
      name: 'opendlf_instances_finished_total',
      help: 'Instances settled, by detailed state (FINISHED, FAILED, STOPPED, TIMED_OUT, ABORTED).',
      labelNames: ['engine', 'state'],
      registers,
    });
    this.runDuration = new Histogram({
      name: 'opendlf_instance_run_duration_seconds',
      help: 'Run slot taken → instance settled.',
      labelNames: ['engine'],
      buckets: RUN_BUCKETS,
      registers,
    });
    this.stopDuration = new Histogram({
      name: 'opendlf_stop_duration_seconds',
      help: 'Stop reached the run → the engine reported the work gone (as the runner observes it).',
      labelNames: ['engine'],
      buckets: STOP_BUCKETS,
      registers,
    });
    this.queueWait = new Histogram({
      name: 'opendlf_queue_wait_seconds',
      help: 'Execute accepted → run slot taken.',
      labelNames: ['engine'],
      buckets: RUN_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'opendlf_queue_depth',
      help: 'Instances waiting for a run slot (on any node sharing the store).',
      registers,
      async collect() {
        this.set((await queue()?.queuedCount()) ?? 0);
      },
    });
    new Gauge({
      name: 'opendlf_active_instances',
      help: 'Instances holding a run slot on this node (launching or running).',
      registers,
      collect() {
        this.set(queue()?.activeCount ?? 0);
      },
    });
    this.httpDuration = new RequestDurationHistogram(
      'opendlf_http_request_duration_seconds',
      'HTTP request duration by route template and status.',
      HTTP_BUCKETS,
      this.registry,
    );
    this.reaped = new Counter({
      name: 'opendlf_instances_reaped_total',
      help: 'Instances of lost nodes (lease expired) that this node settled.',
      registers,
    });
    this.fenced = new Counter({
      name: 'opendlf_runs_fenced_total',
      help: 'Runs this node ended because it could not keep their lease (cut off from the store).',
      registers,
    });
    this.storeErrors = new Counter({
      name: 'opendlf_store_errors_total',
      help: 'Store operations of the runner that failed.',
      registers,
    });
    this.internalErrors = new Counter({
      name: 'opendlf_http_internal_errors_total',
      help: 'Requests answered 500 (bugs; logged with the request id).',
      registers,
    });
  }

  observeQueue(queue: QueueGauges): void {
    this.queue = queue;
  }

  runQueued(engine: string): void {
    this.queued.inc({ engine });
  }

  runStarted(engine: string, queuedSeconds: number): void {
    this.started.inc({ engine });
    this.queueWait.observe({ engine }, Math.max(0, queuedSeconds));
  }

  runEnded(engine: string, state: InstanceState, runSeconds: number): void {
    this.finished.inc({ engine, state });
    this.runDuration.observe({ engine }, runSeconds);
  }

  stopCompleted(engine: string, seconds: number): void {
    this.stopDuration.observe({ engine }, seconds);
  }

  instancesReaped(count: number): void {
    this.reaped.inc(count);
  }

  runFenced(): void {
    this.fenced.inc();
  }

  storeError(): void {
    this.storeErrors.inc();
  }

  requestCompleted(method: string, route: string, statusCode: number, seconds: number): void {
    this.httpDuration.observe(method, route, statusCode, seconds);
    if (statusCode >= 500) this.internalErrors.inc();
  }

  contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
