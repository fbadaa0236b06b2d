/**
 * Review (approval) mode in one workspace: scripts need approvers and a target status, only a
 * listed approver holding `approve` (admin, deployer) may approve and never the submitter, the
 * approvers a script names must be principals who can approve there, only approved scripts run,
 * PRODUCTION is for workspace admins, and a workspace without review ignores the fields.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertError, assertNoContent } from '../helpers/assertions.js';
import {
  PRINCIPALS,
  PROJECT_A,
  TokenClient,
  startMultiUserServer,
  tokenId,
  type MultiUserServer,
} from '../helpers/multi-user.js';
import { startTestServer, type ApiResponse } from '../helpers/server.js';

/** Principals beyond the helper's: a deployer and a second admin of project A. */
const DEPLOYER_TOKEN = 'token-deployer-A-0000000000000007';
const SECOND_ADMIN_TOKEN = 'token-admin-A2-00000000000000008';

describe('review (approval) mode', () => {
  let server: MultiUserServer;
  const id = {
    adminA: tokenId(PRINCIPALS.adminA.token),
    developerA: tokenId(PRINCIPALS.developerA.token),
    viewerA: tokenId(PRINCIPALS.viewerA.token),
    operatorA: tokenId(PRINCIPALS.operatorA.token),
    adminB: tokenId(PRINCIPALS.adminB.token),
    deployerA: tokenId(DEPLOYER_TOKEN),
    secondAdminA: tokenId(SECOND_ADMIN_TOKEN),
  };
  type Who = 'adminA' | 'developerA' | 'viewerA' | 'operatorA' | 'deployerA' | 'secondAdminA';
  const client = (who: Who, workspace = 'reviewed'): TokenClient => {
    if (who === 'deployerA') return new TokenClient(server.url, PROJECT_A, DEPLOYER_TOKEN, workspace);
    if (who === 'secondAdminA') return new TokenClient(server.url, PROJECT_A, SECOND_ADMIN_TOKEN, workspace);
    return server.as(who, { workspace });
  };

  before(async () => {
    server = await startMultiUserServer({
      reviewWorkspaces: ['reviewed'],
      credentials: [
        { token: DEPLOYER_TOKEN, projects: [PROJECT_A], grants: [{ workspace: '*', role: 'deployer' }] },
        { token: SECOND_ADMIN_TOKEN, projects: [PROJECT_A], grants: [{ workspace: '*', role: 'admin' }] },
      ],
    });
  });
  after(() => server.close());

  const call = (who: Who, method: string, suffix: string, body?: unknown, workspace = 'reviewed') => {
    const c = client(who, workspace);
    return c.request(method, c.path(suffix), body === undefined ? {} : { body });
  };

  const script = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    type: 'DWSSQL',
    content: 'SELECT 1',
    connectionName: 'duckdb',
    ...extra,
  });
  const submitted = (name: string, ...approvers: string[]) =>
    script(name, {
      targetStatus: 'SUBMITTED',
      approvers: approvers.map((approverName) => ({ approverName })),
    });

  function assertNamesApprover(response: ApiResponse, approver: string): void {
    assertError(response, 400, 'DLF.3051');
    assert.ok(response.json.error_msg.includes(`'${approver}'`), response.json.error_msg);
  }

  it('requires approvers and a target status in a review workspace', async () => {
    assertError(await call('developerA', 'POST', '', script('a')), 400, 'DLF.3051');
    assertError(
      await call('developerA', 'POST', '', script('a', { approvers: [{ approverName: id.deployerA }] })),
      400,
      'DLF.3051',
    );
  });

  it('refuses, at create and at modify, approvers who cannot approve: oneself as developer, a viewer, an operator, an unknown id, another project', async () => {
    for (const approver of [id.developerA, id.viewerA, id.operatorA, 'tok-0000000000000000', id.adminB]) {
      assertNamesApprover(await call('developerA', 'POST', '', submitted('bad', approver)), approver);
    }
    // A valid approver listed next to an invalid one does not make the list acceptable.
    assertNamesApprover(
      await call('developerA', 'POST', '', submitted('bad', id.deployerA, id.viewerA)),
      id.viewerA,
    );
    assertError(await call('developerA', 'GET', '/bad'), 400, 'DLF.6201'); // nothing was created
    assertNoContent(await call('developerA', 'POST', '', submitted('good', id.deployerA)));
    assertNamesApprover(await call('developerA', 'PUT', '/good', submitted('good', id.viewerA)), id.viewerA);
  });

  it('a viewer, a developer or an operator cannot approve or reject', async () => {
    assertNoContent(await call('developerA', 'POST', '', submitted('roles', id.deployerA)));
    for (const who of ['viewerA', 'developerA', 'operatorA'] as const) {
      assertError(await call(who, 'POST', '/roles/approve'), 403, 'DLF.6888');
      assertError(await call(who, 'POST', '/roles/reject'), 403, 'DLF.6888');
    }
    assert.equal((await call('developerA', 'GET', '/roles')).json.approvalStatus, 'PENDING');
  });

  it('a developer submits naming adminA; only adminA approves, then it runs', async () => {
    const body = submitted('flow', id.adminA);
    assertNoContent(await call('developerA', 'POST', '', body));
    const pending = (await call('developerA', 'GET', '/flow')).json;
    assert.equal(pending.approvalStatus, 'PENDING');
    assert.equal(pending.submittedBy, id.developerA);
    assert.equal(pending.approvedBy, null);
    assertError(await call('developerA', 'POST', '/flow/execute'), 400, 'OPENDLF.0604');
    // An admin who is not a listed approver cannot approve either.
    assertError(await call('secondAdminA', 'POST', '/flow/approve'), 403, 'DLF.6888');
    assertNoContent(await call('adminA', 'POST', '/flow/approve'));
    const approved = (await call('developerA', 'GET', '/flow')).json;
    assert.equal(approved.approvalStatus, 'APPROVED');
    assert.equal(approved.approvedBy, id.adminA);
    const instanceId = await client('developerA').execute('flow');
    assert.equal((await client('developerA').waitFor('flow', instanceId)).json.status, 'FINISHED');
    // Modifying submits it again; a rejected script cannot then be approved.
    assertNoContent(await call('developerA', 'PUT', '/flow', { ...body, content: 'SELECT 2' }));
    assertError(await call('developerA', 'POST', '/flow/execute'), 400, 'OPENDLF.0604');
    assertNoContent(await call('adminA', 'POST', '/flow/reject'));
    assert.equal((await call('developerA', 'GET', '/flow')).json.approvalStatus, 'REJECTED');
    assertError(await call('adminA', 'POST', '/flow/approve'), 400, 'DLF.3051');
  });

  it('a deployer (read, execute, approve; no write) approves, and cannot create or modify', async () => {
    assertNoContent(await call('developerA', 'POST', '', submitted('dep', id.deployerA)));
    assertError(await call('deployerA', 'PUT', '/dep', submitted('dep', id.deployerA)), 403, 'DLF.6888');
    assertError(await call('deployerA', 'POST', '', submitted('dep2', id.adminA)), 403, 'DLF.6888');
    assertNoContent(await call('deployerA', 'POST', '/dep/approve'));
    assert.equal((await call('deployerA', 'POST', '/dep/execute')).status, 200);
  });

  it('the submitter can never approve, even as a listed admin; another listed admin can', async () => {
    assertNoContent(await call('adminA', 'POST', '', submitted('own', id.adminA, id.secondAdminA)));
    const refused = await call('adminA', 'POST', '/own/approve');
    assertError(refused, 403, 'DLF.6888');
    assert.match(refused.json.error_msg, /submitter/);
    assertError(await call('adminA', 'POST', '/own/reject'), 403, 'DLF.6888');
    assert.equal((await call('adminA', 'GET', '/own')).json.approvalStatus, 'PENDING');
    assertError(await call('adminA', 'POST', '/own/execute'), 400, 'OPENDLF.0604');

    // Whoever modifies last is the submitter: after secondAdminA's modify, adminA may approve and
    // secondAdminA may not.
    assertNoContent(
      await call('secondAdminA', 'PUT', '/own', {
        ...submitted('own', id.adminA, id.secondAdminA),
        content: 'SELECT 3',
      }),
    );
    assertError(await call('secondAdminA', 'POST', '/own/approve'), 403, 'DLF.6888');
    assertNoContent(await call('adminA', 'POST', '/own/approve'));
    assert.equal((await call('adminA', 'POST', '/own/execute')).status, 200);
  });

  it('PRODUCTION is for workspace admins only, and is executable at once', async () => {
    const body = script('prod', { targetStatus: 'PRODUCTION', approvers: [{ approverName: id.deployerA }] });
    assertError(await call('developerA', 'POST', '', body), 403, 'DLF.6888');
    assertNoContent(await call('adminA', 'POST', '', body));
    assert.equal((await call('adminA', 'POST', '/prod/execute')).status, 200);
  });

  it('delete needs approvers in a review workspace', async () => {
    assertError(await call('adminA', 'DELETE', '/prod'), 400, 'DLF.3051');
    assertNamesApprover(
      await call('adminA', 'DELETE', '/prod', { approvers: [{ approverName: id.viewerA }] }),
      id.viewerA,
    );
    assertNoContent(await call('adminA', 'DELETE', '/prod', { approvers: [{ approverName: id.deployerA }] }));
  });

  it('a workspace without review accepts and ignores targetStatus and approvers', async () => {
    const body = script('free', { targetStatus: 'SAVED', approvers: [{ approverName: 'nobody' }] });
    assertNoContent(await call('developerA', 'POST', '', body, 'open'));
    const got = await call('developerA', 'GET', '/free', undefined, 'open');
    assert.equal(got.json.approvalStatus, undefined);
    assert.equal(got.json.targetStatus, undefined);
    assert.equal((await call('developerA', 'POST', '/free/execute', undefined, 'open')).status, 200);
  });
});

describe('review (approval) mode without credentials', () => {
  it('keeps single-user review convenient: free-form approvers, and the anonymous admin approves', async () => {
    const server = await startTestServer({ reviewWorkspaces: ['reviewed'] });
    try {
      const c = server.client(undefined, 'reviewed');
      await c.createScript({
        name: 'solo',
        type: 'DWSSQL',
        content: 'SELECT 1',
        connectionName: 'duckdb',
        targetStatus: 'SUBMITTED',
        approvers: [{ approverName: 'anonymous' }, { approverName: 'a colleague' }],
      });
      assertNoContent(await c.request('POST', c.path('/solo/approve')));
      assert.equal((await c.request('POST', c.path('/solo/execute'))).status, 200);
    } finally {
      await server.close();
    }
  });
});
