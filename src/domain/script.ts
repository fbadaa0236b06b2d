/**
 * What a script IS (docs/compatibility.md §3): its fields, the type enum, and the normalisation rules the API
 * applies on input. No I/O here.
 */
import { DlfError, invalidParameter } from './dlf-error.js';
import { assertScriptTimeout, SCRIPT_TIMEOUT_KEY } from './execute-options.js';
import { SCRIPT_TYPES } from './script-types.js';
import { assertMapKey, toWireString } from './wire-values.js';

export { SCRIPT_TYPES };
export type ScriptType = (typeof SCRIPT_TYPES)[number];

/** Script types whose content is SQL (split into statements, one result per statement). */
export const SQL_SCRIPT_TYPES: readonly ScriptType[] = [
  'FlinkSQL',
  'DLISQL',
  'SparkSQL',
  'HiveSQL',
  'DWSSQL',
  'RDSSQL',
  'PRESTO',
  'ClickHouseSQL',
  'HetuEngineSQL',
  'ImpalaSQL',
];

export function isScriptType(value: unknown): value is ScriptType {
  return typeof value === 'string' && (SCRIPT_TYPES as readonly string[]).includes(value);
}

export function isSqlScriptType(type: ScriptType): boolean {
  return SQL_SCRIPT_TYPES.includes(type);
}

/** The namespace every script, instance and connection lives in: a project and a workspace. */
export interface Namespace {
  readonly projectId: string;
  readonly workspaceId: string;
}

export interface JobApprover {
  approverName: string;
}

/** The mutable and immutable fields a client sends on create/modify. */
export interface ScriptInput {
  name: string;
  type: ScriptType;
  content: string;
  directory: string;
  connectionName: string;
  database: string;
  queueName: string;
  configuration: Record<string, string>;
  description: string;
  targetStatus?: string;
  approvers?: JobApprover[];
}

/**
 * Review (approval) state, only meaningful in workspaces with review enabled: NONE when review is
 * off; SAVED (not submitted), PENDING (submitted, waiting for an approver), APPROVED, REJECTED.
 * Only APPROVED scripts may be executed in a review workspace.
 */
export type ApprovalState = 'NONE' | 'SAVED' | 'PENDING' | 'APPROVED' | 'REJECTED';

export interface Script extends ScriptInput {
  approvalState: ApprovalState;
  /** Who approved or rejected it (principal id), or null. */
  approvedBy: string | null;
  /** Server-assigned id (PY's ScriptInfo.id). */
  readonly id: string;
  readonly namespace: Namespace;
  owner: string;
  createUser: string;
  /** Incremented on every modify; PY's "latest submitted version". */
  version: number;
  readonly createdAt: Date;
  updatedAt: Date;
}

export const SCRIPT_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;
const DIRECTORY_SEGMENT_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const MAX_DIRECTORY_DEPTH = 10;
export const MAX_DESCRIPTION_LENGTH = 255;
/** DataArts' documented content limit (4 MB), counted in UTF-8 bytes. */
export const MAX_CONTENT_BYTES = 4 * 1024 * 1024;
/** DataArts' per-workspace script quota. */
export const MAX_SCRIPTS_PER_WORKSPACE = 10_000;

export function assertScriptName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) throw invalidParameter('name is required');
  if (!SCRIPT_NAME_PATTERN.test(name)) {
    throw invalidParameter(
      'name must be 1-128 characters of letters, digits, underscores (_), hyphens (-) and periods (.)',
    );
  }
  // `.` and `..` match the pattern but are URL dot segments: clients (WHATWG URL, urllib3) remove
  // them from `/scripts/{name}` even when percent-encoded, so such a script could never be
  // read, executed or deleted again.
  if (name === '.' || name === '..') throw invalidParameter(`name may not be '${name}'`);
}

/** `a/b`, `/a/b`, `/a/b/` ⇒ `/a/b`; empty ⇒ `/`. Segments follow the console's directory-name rule. */
export function normaliseDirectory(directory: unknown): string {
  if (directory === undefined || directory === null || directory === '') return '/';
  if (typeof directory !== 'string') throw invalidParameter('directory must be a string');
  const segments = directory.split('/').filter((s) => s.length > 0);
  if (segments.length > MAX_DIRECTORY_DEPTH) {
    throw invalidParameter(`directory may have at most ${MAX_DIRECTORY_DEPTH} levels`);
  }
  for (const segment of segments) {
    if (!DIRECTORY_SEGMENT_PATTERN.test(segment)) {
      throw invalidParameter(
        `directory segment '${segment}' must be 1-64 letters, digits, underscores or hyphens`,
      );
    }
  }
  return segments.length === 0 ? '/' : `/${segments.join('/')}`;
}

/** GO and Terraform read `configuration` as map[string]string, so values are stored as strings. */
export function normaliseConfiguration(configuration: unknown): Record<string, string> {
  if (configuration === undefined || configuration === null) return {};
  if (typeof configuration !== 'object' || Array.isArray(configuration)) {
    throw invalidParameter('configuration must be an object');
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(configuration as Record<string, unknown>)) {
    assertMapKey(key, 'configuration');
    const text = toWireString(value);
    // Extension: the default timeout of the script's runs, refused now rather than at execute.
    if (key === SCRIPT_TIMEOUT_KEY) assertScriptTimeout(text);
    out[key] = text;
  }
  return out;
}

function optionalString(body: Record<string, unknown>, key: string, max?: number): string {
  const value = body[key];
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw invalidParameter(`${key} must be a string`);
  if (max !== undefined && value.length > max) throw invalidParameter(`${key} exceeds ${max} characters`);
  return value;
}

function parseApprovers(value: unknown): JobApprover[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw invalidParameter('approvers must be an array');
  return value.map((item: unknown) => {
    if (typeof item !== 'object' || item === null) throw invalidParameter('approvers[] must be objects');
    const name = (item as Record<string, unknown>).approverName;
    if (typeof name !== 'string' || name.length === 0) {
      throw invalidParameter('approvers[].approverName is required');
    }
    return { approverName: name };
  });
}

/** The parsed JSON of a delete body: `{approvers}` (optional; required in review workspaces). */
export function parseDeleteBody(body: unknown): JobApprover[] | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body !== 'object' || Array.isArray(body))
    throw invalidParameter('the request body must be a JSON object');
  return parseApprovers((body as Record<string, unknown>).approvers);
}

/**
 * Validates and normalises a create/modify body. Errors: missing or unknown `type` ⇒ DLF.6247;
 * everything else ⇒ DLF.3051 with a message naming the field.
 */
export function parseScriptInput(body: unknown): ScriptInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidParameter('the request body must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  assertScriptName(b.name);
  if (b.type === undefined || b.type === null || b.type === '') throw new DlfError('DLF.6247');
  if (!isScriptType(b.type)) {
    throw new DlfError(
      'DLF.6247',
      `The script type is not specified or not supported: ${typeof b.type === 'string' ? JSON.stringify(b.type.slice(0, 64)) : typeof b.type}. Supported: ${SCRIPT_TYPES.join(', ')}.`,
    );
  }
  const content = b.content === undefined || b.content === null ? '' : b.content;
  if (typeof content !== 'string') throw invalidParameter('content must be a string');
  if (Buffer.byteLength(content, 'utf8') > MAX_CONTENT_BYTES) {
    throw invalidParameter('content exceeds the 4 MB limit');
  }
  const targetStatus = b.targetStatus;
  if (targetStatus !== undefined && targetStatus !== null) {
    if (targetStatus !== 'SAVED' && targetStatus !== 'SUBMITTED' && targetStatus !== 'PRODUCTION') {
      throw invalidParameter('targetStatus must be SAVED, SUBMITTED or PRODUCTION');
    }
  }
  const input: ScriptInput = {
    name: b.name,
    type: b.type,
    content,
    directory: normaliseDirectory(b.directory),
    connectionName: optionalString(b, 'connectionName', 100),
    database: optionalString(b, 'database', 128),
    queueName: optionalString(b, 'queueName', 128),
    configuration: normaliseConfiguration(b.configuration),
    description: optionalString(b, 'description', MAX_DESCRIPTION_LENGTH),
  };
  if (typeof targetStatus === 'string') input.targetStatus = targetStatus;
  const approvers = parseApprovers(b.approvers);
  if (approvers) input.approvers = approvers;
  return input;
}
