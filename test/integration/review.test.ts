/**
 * Review (approval) mode in one workspace: scripts need approvers and a target status, only a
 * listed approver may approve, only approved scripts run, PRODUCTION is for workspace admins, and a
 * workspace without review ignores the fields.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { openDataDirectory, startServer, type RunningServer } from '../../src/main.js';
import { CredentialDirectory } from '../../src/services/credential-directory.js';
import { assertError, assertNoContent } from '../helpers/assertions.js';
import { tempDir } from '../helpers/server.js';

const P = 'proj-review';
const tokens = {
  admin: 'review-admin-token-000000001',
  dev: 'review-dev-token-00000000002',
  approver: 'review-approver-token-000003',
};

describe('review (approval) mode', () => {
  const dataDir = tempDir();
  let server: RunningServer;
  let approverId = '';

  before(async () => {
    const { store, cipher } = await openDataDirectory(dataDir);
    const directory = new CredentialDirectory(store.credentials, cipher);
    const grant = (role: 'admin' | 'developer' | 'viewer') => [{ workspace: '*', role }];
    await directory.putToken({ token: tokens.admin, projects: [P], grants: grant('admin'), expiresAt: null });
    await directory.putToken({
      token: tokens.dev,
      projects: [P],
      grants: grant('developer'),
      expiresAt: null,
    });
    approverId = await directory.putToken({
      token: tokens.approver,
      projects: [P],
      grants: grant('viewer'),
      expiresAt: null,
    });
    await store.close();
    server = await startServer(
      loadConfig({ overrides: { port: 0, dataDir, logLevel: 'silent', reviewWorkspaces: ['reviewed'] } }),
      pino({ level: 'silent' }),
    );
  });
  after(async () => {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function call(method: string, path: string, token: string, body?: unknown, workspace = 'reviewed') {
    const response = await fetch(`${server.url}/v1/${P}/scripts${path}`, {
      method,
      headers: { 'X-Auth-Token': token, workspace, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      text,
      json: text ? JSON.parse(text) : undefined,
    };
  }

  const script = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    type: 'DWSSQL',
    content: 'SELECT 1',
    connectionName: 'duckdb',
    ...extra,
  });

  it('requires approvers and a target status in a review workspace', async () => {
    assertError(await call('POST', '', tokens.dev, script('a')), 400, 'DLF.3051');
    assertError(
      await call('POST', '', tokens.dev, script('a', { approvers: [{ approverName: approverId }] })),
      400,
      'DLF.3051',
    );
  });

  it('a submitted script runs only after a listed approver approves it', async () => {
    const body = script('flow', { targetStatus: 'SUBMITTED', approvers: [{ approverName: approverId }] });
    assertNoContent(await call('POST', '', tokens.dev, body));
    assert.equal((await call('GET', '/flow', tokens.dev)).json.approvalStatus, 'PENDING');
    assertError(await call('POST', '/flow/execute', tokens.dev), 400, 'OPENDLF.0604');
    assertError(await call('POST', '/flow/approve', tokens.dev), 403, 'DLF.6888');
    assertNoContent(await call('POST', '/flow/approve', tokens.approver));
    const approved = await call('GET', '/flow', tokens.dev);
    assert.equal(approved.json.approvalStatus, 'APPROVED');
    assert.equal(approved.json.approvedBy, approverId);
    assert.equal((await call('POST', '/flow/execute', tokens.dev)).status, 200);
    // Modifying submits it again.
    assertNoContent(await call('PUT', '/flow', tokens.dev, { ...body, content: 'SELECT 2' }));
    assertError(await call('POST', '/flow/execute', tokens.dev), 400, 'OPENDLF.0604');
    assertNoContent(await call('POST', '/flow/reject', tokens.approver));
    assert.equal((await call('GET', '/flow', tokens.dev)).json.approvalStatus, 'REJECTED');
    assertError(await call('POST', '/flow/approve', tokens.approver), 400, 'DLF.3051');
  });

  it('PRODUCTION is for workspace admins only, and is executable at once', async () => {
    const body = script('prod', { targetStatus: 'PRODUCTION', approvers: [{ approverName: approverId }] });
    assertError(await call('POST', '', tokens.dev, body), 403, 'DLF.6888');
    assertNoContent(await call('POST', '', tokens.admin, body));
    assert.equal((await call('POST', '/prod/execute', tokens.admin)).status, 200);
  });

  it('delete needs approvers in a review workspace', async () => {
    assertError(await call('DELETE', '/prod', tokens.admin), 400, 'DLF.3051');
    assertNoContent(
      await call('DELETE', '/prod', tokens.admin, { approvers: [{ approverName: approverId }] }),
    );
  });

  it('a workspace without review accepts and ignores targetStatus and approvers', async () => {
    const body = script('free', { targetStatus: 'SAVED', approvers: [{ approverName: 'nobody' }] });
    assertNoContent(await call('POST', '', tokens.dev, body, 'open'));
    const got = await call('GET', '/free', tokens.dev, undefined, 'open');
    assert.equal(got.json.approvalStatus, undefined);
    assert.equal(got.json.targetStatus, undefined);
    assert.equal((await call('POST', '/free/execute', tokens.dev, undefined, 'open')).status, 200);
  });
});
