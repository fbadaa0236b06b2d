import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  cgroupDirectoryFrom,
  cgroupPids,
  createCgroup,
  enterCgroup,
  killCgroupFrozen,
  ownCgroupLocation,
  removeCgroup,
  waitUntilEmpty,
} from '../../src/engines/local-process/cgroup2.js';
import { RunContainment } from '../../src/engines/local-process/run-containment.js';

const HYBRID_MOUNTS = [
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');
const PURE_V2_MOUNTS = '30 23 0:27 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate';

describe('cgroupDirectoryFrom', () => {
  it('finds the cgroup2 mount among v1 ones (hybrid host) and joins the v2 path', () => {
    assert.equal(cgroupDirectoryFrom(HYBRID_MOUNTS, '4:memory:/x\n0::/\n'), '/sys/fs/cgroup/unified');
    assert.equal(
      cgroupDirectoryFrom(PURE_V2_MOUNTS, '0::/system.slice/opendlf.service\n'),
      '/sys/fs/cgroup/system.slice/opendlf.service',
    );
  });

  it('maps a mount of a subtree, and refuses a cgroup outside the mounted subtree', () => {
    const subtree = '50 23 0:27 /lxc/c1 /mnt/cg\\040x rw - cgroup2 cgroup2 rw';
    assert.equal(cgroupDirectoryFrom(subtree, '0::/lxc/c1/app\n'), '/mnt/cg x/app');
    assert.equal(cgroupDirectoryFrom(subtree, '0::/lxc/c10\n'), undefined);
  });

  it('is undefined without a cgroup2 mount or a v2 membership', () => {
    assert.equal(cgroupDirectoryFrom(HYBRID_MOUNTS.split('\n').slice(0, 2).join('\n'), '0::/\n'), undefined);
    assert.equal(cgroupDirectoryFrom(PURE_V2_MOUNTS, '4:memory:/x\n'), undefined);
  });
});

describe('RunContainment.endLeftovers', () => {
  const scope = `leftover-test-${process.pid}`;
  const containment = RunContainment.detect(scope);
  const location = ownCgroupLocation();
  const skip =
    containment.mode === 'cgroup' && location ? undefined : `no usable cgroup v2: ${containment.description}`;

  it(
    'ends runs left under this scope, also below a cgroup the server no longer lives in',
    { skip },
    async () => {
      // As if an earlier process of this server had lived in another cgroup (started by hand).
      const earlierHome = join(location!.mountPoint, `opendlf-test-earlier-home-${process.pid}`);
      const runs = [join(earlierHome, `opendlf-${scope}`, 'run-a'), containment.place('run-b').cgroup!];
      const children = runs.map((cgroup) => {
        createCgroup(cgroup);
        const child = spawn('sleep', ['300'], { stdio: 'ignore' });
        enterCgroup(cgroup, child.pid!);
        return child;
      });
      try {
        const exits = children.map((child) => new Promise((resolve) => child.once('exit', resolve)));
        assert.equal(await containment.endLeftovers(), 2);
        await Promise.all(exits);
        assert.deepEqual(
          runs.filter((cgroup) => existsSync(cgroup)),
          [],
          'the run cgroups are removed',
        );
      } finally {
        for (const child of children) child.kill('SIGKILL');
        removeCgroup(join(earlierHome, `opendlf-${scope}`));
        removeCgroup(earlierHome);
        containment.close();
      }
    },
  );
});

describe('killCgroupFrozen (kernels without cgroup.kill)', () => {
  const location = ownCgroupLocation();
  const probe = RunContainment.detect(`freeze-test-${process.pid}`);
  probe.close();
  const skip = probe.mode === 'cgroup' && location ? undefined : `no usable cgroup v2: ${probe.description}`;

  it('ends a forking tree with setsid children: 0 processes left', { skip }, async () => {
    const cgroup = join(location!.directory, `opendlf-freeze-test-${process.pid}`);
    createCgroup(cgroup);
    try {
      // The leader waits on the pipe until it is in the cgroup, then forks without pause.
      const child = spawn(
        'bash',
        [
          '-c',
          'read -r _; for i in 1 2 3; do setsid sleep 300 & done; while :; do sleep 0.01 & wait $!; done',
        ],
        { stdio: ['pipe', 'ignore', 'ignore'] },
      );
      enterCgroup(cgroup, child.pid!);
      child.stdin.end('go\n');
      const deadline = Date.now() + 10_000;
      while (cgroupPids(cgroup).length < 4 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      assert.ok(cgroupPids(cgroup).length >= 4, 'precondition: the tree runs in the cgroup');
      assert.equal(await waitUntilEmpty(cgroup, Date.now() + 10_000, 5, killCgroupFrozen), true);
      assert.deepEqual(cgroupPids(cgroup), []);
    } finally {
      removeCgroup(cgroup);
    }
  });
});
