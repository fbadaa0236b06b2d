/**
 * Turns the path's project id and the `workspace` header into the namespace a request works in.
 * No header and the default workspace's explicit id are the same workspace (GO's acceptance test
 * relies on it). With no workspaces declared in config any id is accepted; with a declared list an
 * unknown id is DLF.0819.
 */
import { DlfError, invalidParameter } from '../domain/dlf-error.js';
import type { Namespace } from '../domain/script.js';

/** Ids become parts of file names (per-workspace DuckDB files), so they are kept to a safe alphabet. */
const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export interface WorkspaceConfig {
  /** Id of the workspace used when the header is absent. Default `default`. */
  readonly defaultWorkspace: string;
  /** Declared workspace ids; empty ⇒ any well-formed id is accepted. */
  readonly workspaces: readonly string[];
}

/** Resolved pairs kept; past it the map starts over (the ids come from requests, so it is bounded). */
const MAX_RESOLVED = 1_024;

export class WorkspaceResolver {
  /**
   * Project id → header value (absent: '') → namespace. Every request resolves one, nearly always
   * one of the same few pairs: two map reads instead of the checks, and one frozen object per pair.
   */
  private readonly resolved = new Map<string, Map<string, Namespace>>();
  private resolvedCount = 0;

  constructor(private readonly config: WorkspaceConfig) {}

  resolve(projectId: string, workspaceHeader: string | undefined): Namespace {
    const header = workspaceHeader ?? '';
    let byHeader = this.resolved.get(projectId);
    const known = byHeader?.get(header);
    if (known !== undefined) return known;
    const namespace = Object.freeze(this.check(projectId, workspaceHeader));
    if (this.resolvedCount >= MAX_RESOLVED) {
      this.resolved.clear();
      this.resolvedCount = 0;
      byHeader = undefined;
    }
    if (byHeader === undefined) this.resolved.set(projectId, (byHeader = new Map<string, Namespace>()));
    byHeader.set(header, namespace);
    this.resolvedCount += 1;
    return namespace;
  }

  private check(projectId: string, workspaceHeader: string | undefined): Namespace {
    if (!ID_PATTERN.test(projectId)) {
      throw invalidParameter('project_id must be 1-64 letters, digits, underscores or hyphens');
    }
    const requested = workspaceHeader?.trim() ?? '';
    const workspaceId = requested === '' ? this.config.defaultWorkspace : requested;
    if (!ID_PATTERN.test(workspaceId)) throw new DlfError('DLF.0819');
    if (
      this.config.workspaces.length > 0 &&
      workspaceId !== this.config.defaultWorkspace &&
      !this.config.workspaces.includes(workspaceId)
    ) {
      throw new DlfError('DLF.0819', `The workspace ID does not exist: ${workspaceId}`);
    }
    return { projectId, workspaceId };
  }
}
