/**
 * The workspace resolver answers the same from its map of resolved pairs as from its checks: a
 * refused pair stays refused however often it is asked, and the map starting over changes nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DlfError } from '../../src/domain/dlf-error.js';
import { WorkspaceResolver } from '../../src/services/workspace-resolver.js';

const codeOf = (work: () => unknown) => {
  try {
    work();
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof DlfError);
    return error.code;
  }
};

describe('WorkspaceResolver', () => {
  it('resolves, refuses and repeats the same answers', () => {
    const resolver = new WorkspaceResolver({ defaultWorkspace: 'default', workspaces: ['w1'] });
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(resolver.resolve('p1', undefined), { projectId: 'p1', workspaceId: 'default' });
      assert.deepEqual(resolver.resolve('p1', ''), { projectId: 'p1', workspaceId: 'default' });
      assert.deepEqual(resolver.resolve('p1', ' w1 '), { projectId: 'p1', workspaceId: 'w1' });
      assert.equal(
        codeOf(() => resolver.resolve('p1', 'w2')),
        'DLF.0819',
      );
      assert.equal(
        codeOf(() => resolver.resolve('p1', 'bad id')),
        'DLF.0819',
      );
      assert.equal(
        codeOf(() => resolver.resolve('p/1', undefined)),
        'DLF.3051',
      );
    }
    assert.equal(resolver.resolve('p1', 'w1'), resolver.resolve('p1', 'w1'));
    assert.ok(Object.isFrozen(resolver.resolve('p1', 'w1')));
  });

  it('answers the same once more pairs were asked than it keeps', () => {
    const resolver = new WorkspaceResolver({ defaultWorkspace: 'default', workspaces: [] });
    for (let i = 0; i < 3_000; i++) {
      const workspace = `w${i % 1_500}`;
      assert.deepEqual(resolver.resolve(`p${i % 7}`, workspace), {
        projectId: `p${i % 7}`,
        workspaceId: workspace,
      });
    }
    assert.equal(
      codeOf(() => resolver.resolve('p1', 'x'.repeat(65))),
      'DLF.0819',
    );
  });
});
