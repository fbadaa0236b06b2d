/**
 * Wire shapes (camelCase, exactly as DataArts clients expect) of scripts and instance results.
 */
import type { Instance, InstanceSummary } from '../domain/instance.js';
import { toApiStatus } from '../domain/instance-state.js';
import type { Script } from '../domain/script.js';

/**
 * targetStatus/approvers are not echoed (the real GET omits them); configuration is strings only
 * (docs/compatibility.md §3).
 */
export function scriptRepresentation(script: Script) {
  return {
    name: script.name,
    type: script.type,
    content: script.content,
    directory: script.directory,
    connectionName: script.connectionName,
    database: script.database,
    queueName: script.queueName,
    configuration: script.configuration,
    description: script.description,
    id: script.id,
    owner: script.owner,
    version: script.version,
    createUser: script.createUser,
    autoAcquireLock: true,
    // Extension, only in workspaces with review enabled. The store's `approvedBy` is whoever set the
    // review state: the decider for APPROVED/REJECTED, the submitter for PENDING/SAVED.
    ...(script.approvalState !== 'NONE'
      ? {
          approvalStatus: script.approvalState,
          approvedBy:
            script.approvalState === 'APPROVED' || script.approvalState === 'REJECTED'
              ? script.approvedBy
              : null,
          submittedBy:
            script.approvalState === 'PENDING' || script.approvalState === 'SAVED' ? script.approvedBy : null,
        }
      : {}),
  };
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/**
 * `status` stays one of the four documented values (pollers know no others); `message` is set on
 * FAILED; the remaining fields are opendlf extensions that no client is required to read.
 */
export function instanceResultRepresentation(instance: Instance) {
  const status = toApiStatus(instance.state);
  return {
    status,
    results: instance.results,
    ...(status === 'FAILED' ? { message: instance.message } : {}),
    instanceId: instance.id,
    detailedStatus: instance.state,
    // Machine-readable why (domain/failure-reason.ts); null unless the instance did not finish.
    failureReason: instance.failureReason,
    sqlState: instance.sqlState,
    connectionName: instance.connectionName,
    engine: instance.engine,
    createTime: iso(instance.createdAt),
    startTime: iso(instance.startedAt),
    endTime: iso(instance.endedAt),
    stopRequestTime: iso(instance.stopRequestedAt),
    stoppedBy: instance.stopRequestedBy,
    // Who executed it (principal id); null for runs from before it was recorded.
    startedBy: instance.startedBy,
    exitCode: instance.exitCode,
    // The node that accepted it (while queued) or runs/ran it.
    nodeId: instance.nodeId,
  };
}

/**
 * Extension listings (run history): the result's fields without the (possibly large) results, and
 * `message` always, plus the script's name and the run's `duration` in seconds (start to end;
 * null until it has both).
 */
export function instanceSummaryRepresentation(instance: InstanceSummary) {
  return {
    status: toApiStatus(instance.state),
    instanceId: instance.id,
    scriptName: instance.scriptName,
    detailedStatus: instance.state,
    failureReason: instance.failureReason,
    sqlState: instance.sqlState,
    connectionName: instance.connectionName,
    engine: instance.engine,
    createTime: iso(instance.createdAt),
    startTime: iso(instance.startedAt),
    endTime: iso(instance.endedAt),
    duration:
      instance.startedAt && instance.endedAt
        ? Math.max(0, instance.endedAt.getTime() - instance.startedAt.getTime()) / 1000
        : null,
    stopRequestTime: iso(instance.stopRequestedAt),
    stoppedBy: instance.stopRequestedBy,
    startedBy: instance.startedBy,
    exitCode: instance.exitCode,
    nodeId: instance.nodeId,
    message: instance.message,
  };
}
