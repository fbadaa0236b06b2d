/**
 * The wire between the server and its process spawner (spawner-process.ts): frames over the
 * spawner's stdin (server → spawner) and stdout (spawner → server). Its stdin and stdout, because
 * every script it spawns gets its own descriptors 0–2, so no script inherits the channel (a
 * descriptor 3 would be inherited: Node cannot mark it close-on-exec).
 *
 * A frame is a 9-byte header — payload length (u32), type (u8), run key (u32) — then the payload:
 * JSON for control frames, the raw bytes for output.
 */

export const FrameType = {
  /** server → spawner, JSON `SpawnRequest`. */
  Spawn: 1,
  /** server → spawner, empty: drop the run's pipes (an escaped process still holds them). */
  Release: 2,
  /** spawner → server, JSON `SpawnStarted`. */
  Started: 3,
  /** spawner → server, raw stdout/stderr bytes in arrival order. */
  Output: 4,
  /** spawner → server, JSON `SpawnExit`: the leader exited (output may still follow). */
  Exit: 5,
  /** spawner → server, empty: both pipes closed; no output frame follows for this run. */
  OutputClosed: 6,
  /** spawner → server, key 0, empty: the spawner has started and reads requests. */
  Ready: 7,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export interface SpawnRequest {
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly uid?: number;
  readonly gid?: number;
  /**
   * The run's cgroup directory (cgroup containment): the spawner enters it before the fork and
   * leaves it right after, so the child starts inside it.
   */
  readonly cgroup?: string;
  /** `OPENDLF_RUN=<node>/<run>` (scan containment): finds members that left the session. */
  readonly marker?: string;
}

export type SpawnStarted =
  { readonly pid: number; readonly startTicks: number | null } | { readonly error: string };

export interface SpawnExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** True when a member of the run (its cgroup, or its session, group, marker or a descendant) outlived the leader. */
  readonly membersLeft: boolean;
}

const HEADER_BYTES = 9;

export function encodeFrame(type: FrameType, key: number, payload: Buffer | string = ''): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.writeUInt8(type, 4);
  frame.writeUInt32BE(key, 5);
  body.copy(frame, HEADER_BYTES);
  return frame;
}

/** Reassembles frames from stream chunks of any size. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (type: FrameType, key: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    let buffer = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (buffer.length >= HEADER_BYTES) {
      const length = buffer.readUInt32BE(0);
      if (buffer.length < HEADER_BYTES + length) break;
      const type = buffer.readUInt8(4) as FrameType;
      const key = buffer.readUInt32BE(5);
      // A copy: the payload may be kept (output) while `buffer` is reused.
      const payload = Buffer.from(buffer.subarray(HEADER_BYTES, HEADER_BYTES + length));
      buffer = buffer.subarray(HEADER_BYTES + length);
      this.onFrame(type, key, payload);
    }
    this.pending = buffer;
  }
}
