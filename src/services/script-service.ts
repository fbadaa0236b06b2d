/**
 * Script use cases: create, modify, get, list, delete (docs/compatibility.md §3), and review (approval) in
 * workspaces that enable it (README, Review (approval) mode). Deleting a script first stops its running
 * instances, then removes it with its instances and their files.
 *
 * Review: off by default (targetStatus/approvers accepted and ignored). When on for a workspace,
 * create and modify need `approvers` and `targetStatus`; SUBMITTED waits for a listed approver
 * (PENDING), PRODUCTION is allowed to workspace admins only and is approved at once, SAVED is not
 * submitted; delete needs `approvers`; only APPROVED scripts may be executed. Modifying a script
 * submits it again.
 *
 * Separation of duties (DataArts: the reviewer is a workspace admin or deployer, never the
 * submitter), when the server has credentials:
 *  - every approver a script (or a delete) names must be a known, unexpired principal holding
 *    `approve` in this project's workspace; create/modify/delete naming anyone else is refused,
 *    naming the approver;
 *  - the approve/reject route needs `approve` (app.ts), the caller must be a listed approver, and
 *    never the submitter: the principal whose create/modify put the script in PENDING, recorded as
 *    the `by` of the PENDING state (the store's "who set this review state").
 * In single-user mode (no credentials: one anonymous admin) there is nobody to separate duties
 * between, so approvers are free-form names as before and the anonymous admin may approve.
 */
import { integerParam } from '../domain/integer-param.js';
import { DlfError, invalidParameter } from '../domain/dlf-error.js';
import { authorize, roleIn, type Principal } from '../domain/access.js';
import {
  MAX_SCRIPTS_PER_WORKSPACE,
  parseDeleteBody,
  parseScriptInput,
  type JobApprover,
  type Namespace,
  type Script,
  type ScriptInput,
} from '../domain/script.js';
import { isTerminal } from '../domain/instance-state.js';
import type { Approval, ScriptPage, Store } from '../store/store.js';
import type { RunQueue } from './run-queue.js';

export interface ListScriptsParams {
  offset?: string | undefined;
  limit?: string | undefined;
  scriptName?: string | undefined;
}

/** Documented default page size; the documented maximum is 100, 1,000 is accepted (compatibility.md §3). */
export const DEFAULT_LIST_LIMIT = 10;
export const MAX_LIST_LIMIT = 1000;
const MAX_OFFSET = 1_000_000_000;

/** Who a principal id is (the credential directory), to check the approvers a script names. */
export interface PrincipalDirectory {
  /** The live principal with this id, or undefined when unknown or expired. */
  principalById(id: string): Promise<Principal | undefined>;
}

/** Nobody is known: with it, every approver named in an authenticated request is refused. */
const NO_PRINCIPALS: PrincipalDirectory = { principalById: () => Promise.resolve(undefined) };

export class ScriptService {
  constructor(
    private readonly store: Store,
    private readonly runs: RunQueue,
    /** Workspace ids with review (approval) enabled. */
    private readonly reviewWorkspaces: readonly string[] = [],
    private readonly principals: PrincipalDirectory = NO_PRINCIPALS,
  ) {}

  reviewEnabled(ns: Namespace): boolean {
    return this.reviewWorkspaces.includes(ns.workspaceId);
  }

  /**
   * The review state a create/modify leads to; enforces the review-mode rules. `by` records who set
   * it: for PENDING that is the submitter, who may not approve it.
   */
  private async approvalFor(ns: Namespace, input: ScriptInput, principal: Principal): Promise<Approval> {
    if (!this.reviewEnabled(ns)) return { state: 'NONE', by: null };
    if (!input.approvers || input.approvers.length === 0) {
      throw invalidParameter('approvers are required: review is enabled in this workspace');
    }
    await this.assertApproversMayApprove(ns, input.approvers, principal);
    switch (input.targetStatus) {
      case 'SAVED':
        return { state: 'SAVED', by: principal.id };
      case 'SUBMITTED':
        return { state: 'PENDING', by: principal.id };
      case 'PRODUCTION':
        if (roleIn(principal, ns.workspaceId) !== 'admin') {
          throw new DlfError(
            'DLF.6888',
            'Invalid account permissions: only workspace admins may use targetStatus PRODUCTION.',
          );
        }
        return { state: 'APPROVED', by: principal.id };
      default:
        throw invalidParameter(
          'targetStatus (SAVED, SUBMITTED or PRODUCTION) is required: review is enabled in this workspace',
        );
    }
  }

  /**
   * Every named approver must be able to approve here. One message for "unknown" and "not allowed",
   * so a caller cannot probe which principal ids exist. Skipped for the anonymous single-user admin.
   */
  private async assertApproversMayApprove(
    ns: Namespace,
    approvers: readonly JobApprover[],
    principal: Principal,
  ): Promise<void> {
    if (principal.kind === 'anonymous') return;
    for (const { approverName } of approvers) {
      const approver = await this.principals.principalById(approverName);
      if (!approver || !authorize(approver, ns.projectId, ns.workspaceId, 'approve').allowed) {
        throw invalidParameter(
          `approver '${approverName.slice(0, 128)}' cannot approve in workspace '${ns.workspaceId}': an approver must be a known principal (token or access key id) holding the approve permission there (role admin or deployer)`,
        );
      }
    }
  }

  /** @param principal who creates it: the script's owner and createUser. */
  async create(ns: Namespace, body: unknown, principal: Principal): Promise<void> {
    const input = parseScriptInput(body);
    const approval = await this.approvalFor(ns, input, principal);
    if ((await this.store.scripts.count(ns)) >= MAX_SCRIPTS_PER_WORKSPACE) throw new DlfError('DLF.6253');
    if (!(await this.store.scripts.create(ns, input, principal.id, approval))) throw new DlfError('DLF.0202');
  }

  /**
   * Extension: a listed approver approves or rejects a PENDING script; the route has checked the
   * `approve` permission. Never the submitter (unless single-user: see the header).
   */
  async review(
    ns: Namespace,
    name: string,
    decision: 'APPROVED' | 'REJECTED',
    principal: Principal,
  ): Promise<void> {
    if (!this.reviewEnabled(ns)) throw invalidParameter('review is not enabled in this workspace');
    const script = await this.get(ns, name);
    if (!script.approvers?.some((a) => a.approverName === principal.id)) {
      throw new DlfError('DLF.6888', 'Invalid account permissions: you are not an approver of this script.');
    }
    if (principal.kind !== 'anonymous' && script.approvalState === 'PENDING') {
      // A PENDING script submitted before submitters were recorded has `by` null: nobody is known
      // not to be its submitter, so it must be submitted again (modified) first.
      if (script.approvedBy === null || script.approvedBy === principal.id) {
        throw new DlfError(
          'DLF.6888',
          script.approvedBy === null
            ? 'Invalid account permissions: the submitter of this script is not recorded; modify it to submit it again.'
            : 'Invalid account permissions: the submitter of a script cannot approve or reject it; another listed approver must.',
        );
      }
    }
    const decided = await this.store.scripts.setApproval(
      ns,
      name,
      { states: ['PENDING'], version: script.version },
      { state: decision, by: principal.id },
    );
    if (!decided) {
      if (script.approvalState === 'PENDING') {
        throw invalidParameter('the script was modified or decided while you reviewed it; read it again');
      }
      throw invalidParameter(`the script is ${script.approvalState}, not waiting for approval`);
    }
  }

  /** Throws unless the script may be executed (review workspaces: only APPROVED scripts). */
  assertExecutable(ns: Namespace, script: Script): void {
    if (this.reviewEnabled(ns) && script.approvalState !== 'APPROVED') {
      throw new DlfError(
        'OPENDLF.0604',
        `The script cannot be executed: review is enabled in this workspace and the script is ${script.approvalState}, not APPROVED.`,
      );
    }
  }

  async update(ns: Namespace, pathName: string, body: unknown, principal: Principal): Promise<void> {
    const existing = await this.get(ns, pathName);
    const input = parseScriptInput(body);
    if (input.name !== pathName) {
      throw invalidParameter(`the script name cannot be modified (path '${pathName}', body '${input.name}')`);
    }
    if (input.type !== existing.type) {
      throw invalidParameter(
        `the script type cannot be modified (stored ${existing.type}, body ${input.type})`,
      );
    }
    const approval = await this.approvalFor(ns, input, principal);
    if (!(await this.store.scripts.update(ns, input, approval))) throw new DlfError('DLF.6201');
  }

  async get(ns: Namespace, name: string): Promise<Script> {
    const script = await this.store.scripts.get(ns, name);
    if (!script) throw new DlfError('DLF.6201');
    return script;
  }

  list(ns: Namespace, params: ListScriptsParams): Promise<ScriptPage> {
    const offset = integerParam('offset', params.offset, 0, MAX_OFFSET, 0);
    const limit = integerParam('limit', params.limit, 1, MAX_LIST_LIMIT, DEFAULT_LIST_LIMIT);
    return this.store.scripts.list(ns, { offset, limit, nameContains: params.scriptName ?? '' });
  }

  async delete(ns: Namespace, name: string, body: unknown, principal: Principal): Promise<void> {
    const approvers = parseDeleteBody(body);
    await this.get(ns, name);
    if (this.reviewEnabled(ns)) {
      if (!approvers || approvers.length === 0) {
        throw invalidParameter('approvers are required: review is enabled in this workspace');
      }
      await this.assertApproversMayApprove(ns, approvers, principal);
    }
    // The script row goes first: from then on no execute can create an instance of it (the insert
    // is guarded by the row), so the list below has every instance an execute racing this delete
    // could have created, and each is stopped before the delete answers.
    const scriptId = await this.store.scripts.delete(ns, name);
    if (scriptId === undefined) throw new DlfError('DLF.6201');
    const owner = { scriptName: name, namespace: ns };
    // Newest first; a script's instance history is bounded by retention, so this is a bounded read.
    const instances = await this.store.instances.listForScript(scriptId, 100_000);
    // Recorded (who stopped them) and delivered like any stop, on whichever node runs them.
    await Promise.all(
      instances.filter((i) => !isTerminal(i.state)).map((i) => this.runs.stop(i.id, principal.id, owner)),
    );
    await this.store.instances.deleteForScript(scriptId);
    await this.runs.discardRunFiles(instances.map((i) => i.id));
  }
}
