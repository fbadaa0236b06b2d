/** What the HTTP layer reports for metrics, and how it exposes them and readiness. */
export interface HttpObserver {
  /** `route` is the route template (`/v1/:projectId/scripts`), never the raw URL (bounded label set). */
  requestCompleted(method: string, route: string, statusCode: number, seconds: number): void;
}

export interface Observability {
  readonly observer: HttpObserver;
  /** Prometheus text exposition. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Readiness of the store and engines: every check must pass. */
  readiness(): Promise<{ ready: boolean; checks: { name: string; ok: boolean; detail?: string }[] }>;
}
