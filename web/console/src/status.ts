/** Display helpers for the four API statuses and opendlf's detailed states. */
import type { InstanceSummary } from '../../../src/client/api-client.js';

/** A stop can still change something exactly while the instance has not settled. */
export function canStop(instance: InstanceSummary | null): boolean {
  return instance !== null && (instance.status === 'LAUNCHING' || instance.status === 'RUNNING');
}

export function isSettled(instance: InstanceSummary | null): boolean {
  return instance !== null && (instance.status === 'FINISHED' || instance.status === 'FAILED');
}

/** `FAILED · STOPPED`, or just `FINISHED` when the detail adds nothing. */
export function statusLabel(instance: InstanceSummary): string {
  const detail = instance.detailedStatus;
  return detail && detail !== instance.status ? `${instance.status} · ${detail}` : instance.status;
}

/** CSS class of the status badge. */
export function statusTone(instance: InstanceSummary): string {
  if (instance.status === 'FINISHED') return 'ok';
  if (instance.status === 'FAILED') return instance.detailedStatus === 'STOPPED' ? 'stopped' : 'bad';
  return 'busy';
}

/** Seconds between two ISO times (or until now), as `12.3 s` / `4 min 05 s`. */
export function elapsed(
  from: string | null | undefined,
  to: string | null | undefined,
  now = Date.now(),
): string {
  if (!from) return '';
  const end = to ? Date.parse(to) : now;
  const seconds = Math.max(0, (end - Date.parse(from)) / 1000);
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${String(Math.floor(seconds % 60)).padStart(2, '0')} s`;
}

export function localTime(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '';
}
