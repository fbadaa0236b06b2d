import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ACTIONS,
  ROLES,
  authorize,
  type Action,
  type Principal,
  type Role,
} from '../../src/domain/access.js';

const holder = (role: Role): Principal => ({
  id: role,
  kind: 'token',
  projects: ['p'],
  grants: [{ workspace: '*', role }],
});

describe('roles and actions', () => {
  it('grants exactly the documented table (approve: admin and deployer; write: admin and developer)', () => {
    const table: Record<Role, readonly Action[]> = {
      admin: ['read', 'write', 'execute', 'stop', 'approve'],
      developer: ['read', 'write', 'execute', 'stop'],
      deployer: ['read', 'execute', 'stop', 'approve'],
      operator: ['read', 'execute', 'stop'],
      viewer: ['read'],
    };
    for (const role of ROLES) {
      const granted = ACTIONS.filter((action) => authorize(holder(role), 'p', 'w', action).allowed);
      assert.deepEqual(granted, table[role], role);
    }
  });

  it('a role never reaches another project', () => {
    assert.deepEqual(authorize(holder('admin'), 'other', 'w', 'approve'), {
      allowed: false,
      reason: 'project',
    });
  });
});
