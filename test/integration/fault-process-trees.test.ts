/**
 * No process of a local run escapes (issue 12, items 1 and 2), in both containment modes: a cgroup
 * per run (where the server can create cgroup v2 cgroups: root here) and freeze-then-scan of /proc.
 *
 * - Children that leave the session (`setsid`) or double-fork while their parent lives are ended
 *   by a stop, a timeout, a drain, and by crash recovery (kill -9 of a child-process server and a
 *   restart on the same data directory).
 * - A crash in the launch window (runs spawning, handles not yet stored) leaves no orphan.
 * - The `runAs` user cannot move its processes out of the run's cgroup.
 *
 * Survivors are counted from outside the server: live processes whose environment carries the
 * instance id (test/helpers/processes.ts). Counts, not times.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ownCgroupDirectory } from '../../src/engines/local-process/cgroup2.js';
import { RunContainment, type ContainmentSetting } from '../../src/engines/local-process/run-containment.js';
import {
  ensureRunnerUser,
  processesOfInstance,
  RUNNER_USER,
  waitForInstanceProcesses,
} from '../helpers/processes.js';
import {
  ApiClient,
  PROJECT,
  spawnServer,
  startTestServer,
  tempDir,
  type ChildServer,
} from '../helpers/server.js';

/**
 * The recipe plus a double fork: `sleep 404` leaves the session while the leader lives,
 * `sleep 406` is re-parented to init at once (its parent exits right after forking it).
 */
const ESCAPING = "setsid sleep 404 &\n( setsid sh -c 'sleep 406 &' & )\nsleep 405\n";
/** Leader, sleep 404, sleep 405, sleep 406. */
const ESCAPING_PROCESSES = 4;

const cgroupUnavailable = (() => {
  const probe = RunContainment.detect(`test-probe-${process.pid}`);
  probe.close();
  return probe.mode === 'cgroup'
    ? undefined
    : `cgroup v2 is not usable here (${probe.description}): the cgroup mode needs root and a cgroup2 mount`;
})();

const MODES: { mode: Exclude<ContainmentSetting, 'auto'>; skip: string | undefined }[] = [
  { mode: 'cgroup', skip: cgroupUnavailable },
  { mode: 'scan', skip: undefined },
];

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function survivorsOf(ids: readonly string[]): number {
  return ids.reduce((sum, id) => sum + processesOfInstance(id).length, 0);
}

/** Resolves as soon as any of the instances has a live process (one /proc pass per try, 10 s bound). */
async function firstProcessOf(ids: readonly string[]): Promise<void> {
  const needles = new Set(ids.map((id) => `OPENDLF_INSTANCE_ID=${id}`));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
        if (environ.split('\0').some((variable) => needles.has(variable))) return;
      } catch {
        // Gone, or not ours to read.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error('no run of the batch started within 10 s');
}

/** A config file selecting the containment mode for a child-process server. */
function configFile(mode: ContainmentSetting): string {
  const dir = tempDir('opendlf-fault-config-');
  dirs.push(dir);
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ localEngine: { processContainment: mode } }));
  return file;
}

async function executeAll(api: ApiClient, name: string, count: number): Promise<string[]> {
  return Promise.all(Array.from({ length: count }, () => api.execute(name)));
}

for (const { mode, skip } of MODES) {
  describe(`process trees (${mode} containment)`, { skip }, () => {
    it('a stop ends every setsid and double-forked child: 0 of N survive', async () => {
      const server = await startTestServer({
        maxConcurrentRuns: 6,
        stopGraceMs: 300,
        localEngine: { processContainment: mode },
      });
      try {
        const api = server.client();
        await api.createScript({
          name: 'escaping',
          type: 'Shell',
          content: ESCAPING,
          connectionName: 'local',
        });
        const ids = await executeAll(api, 'escaping', 6);
        for (const id of ids) await waitForInstanceProcesses(id, ESCAPING_PROCESSES);
        for (const id of ids) assert.equal((await api.stop('escaping', id)).status, 204);
        const survivors = survivorsOf(ids);
        assert.equal(
          survivors,
          0,
          `${survivors} of ${ids.length * ESCAPING_PROCESSES} processes survived the stop`,
        );
        for (const id of ids) assert.equal((await api.result('escaping', id)).json.detailedStatus, 'STOPPED');
      } finally {
        await server.close();
      }
    });

    it('a timeout and a drain end every setsid child too', async () => {
      const timed = await startTestServer({
        maxConcurrentRuns: 3,
        stopGraceMs: 300,
        instanceTimeoutSeconds: 1.5,
        localEngine: { processContainment: mode },
      });
      let timedIds: string[] = [];
      try {
        const api = timed.client();
        await api.createScript({
          name: 'escaping',
          type: 'Shell',
          content: ESCAPING,
          connectionName: 'local',
        });
        timedIds = await executeAll(api, 'escaping', 3);
        for (const id of timedIds) {
          const done = await api.waitFor('escaping', id);
          assert.equal(done.json.detailedStatus, 'TIMED_OUT', 'precondition: the run timed out');
        }
      } finally {
        await timed.close();
      }
      const timedSurvivors = survivorsOf(timedIds);
      assert.equal(timedSurvivors, 0, `${timedSurvivors} processes survived the timeout`);

      const drained = await startTestServer({
        maxConcurrentRuns: 3,
        stopGraceMs: 300,
        drainTimeoutSeconds: 0,
        localEngine: { processContainment: mode },
      });
      const api = drained.client();
      await api.createScript({ name: 'escaping', type: 'Shell', content: ESCAPING, connectionName: 'local' });
      const drainedIds = await executeAll(api, 'escaping', 3);
      for (const id of drainedIds) await waitForInstanceProcesses(id, ESCAPING_PROCESSES);
      await drained.close();
      const drainedSurvivors = survivorsOf(drainedIds);
      assert.equal(drainedSurvivors, 0, `${drainedSurvivors} processes survived the drain`);
    });

    it('kill -9 of the server: the restart ends every setsid child (0 of N survive)', async () => {
      const dataDir = tempDir();
      dirs.push(dataDir);
      const args = ['--config', configFile(mode), '--max-concurrent-runs', '15'];
      const first = await spawnServer(dataDir, args);
      const api = new ApiClient(first.url, PROJECT);
      await api.createScript({ name: 'escaping', type: 'Shell', content: ESCAPING, connectionName: 'local' });
      const ids = await executeAll(api, 'escaping', 15);
      for (const id of ids) await waitForInstanceProcesses(id, ESCAPING_PROCESSES);
      first.process.kill('SIGKILL');
      await first.exited;
      const orphans = survivorsOf(ids);
      assert.ok(
        orphans >= ids.length * ESCAPING_PROCESSES,
        'precondition: the runs outlive the killed server',
      );

      const second = await spawnServer(dataDir, args);
      try {
        const survivors = survivorsOf(ids);
        assert.equal(
          survivors,
          0,
          `${survivors} of ${orphans} orphaned processes survived the restart's recovery`,
        );
        const api2 = new ApiClient(second.url, PROJECT);
        for (const id of ids) {
          const result = await api2.result('escaping', id);
          assert.equal(result.json.detailedStatus, 'ABORTED');
        }
      } finally {
        second.process.kill('SIGTERM');
        await second.exited;
      }
    });

    it('kill -9 in the launch window leaves no orphan, round after round', async (t) => {
      const dataDir = tempDir();
      dirs.push(dataDir);
      const args = ['--config', configFile(mode), '--max-concurrent-runs', '6'];
      const rounds = 8;
      let server: ChildServer = await spawnServer(dataDir, args);
      let api = new ApiClient(server.url, PROJECT);
      await api.createScript({ name: 'sh', type: 'Shell', content: 'sleep 300\n', connectionName: 'local' });
      await api.createScript({
        name: 'py',
        type: 'PYTHON',
        content: 'import time\ntime.sleep(300)\n',
        connectionName: 'local',
      });
      let launched = 0;
      let unrecorded = 0;
      let survivors = 0;
      let unsettled = 0;
      try {
        for (let round = 0; round < rounds; round++) {
          const executes = [
            ...Array.from({ length: 3 }, () => api.execute('sh').then((id) => ({ id, name: 'sh' }))),
            ...Array.from({ length: 3 }, () => api.execute('py').then((id) => ({ id, name: 'py' }))),
          ];
          const runs = await Promise.all(executes);
          // The launch window opens with the first spawn: the kill lands 0–28 ms after it, a
          // different offset each round, while the other runs spawn and handles are written.
          await firstProcessOf(runs.map((r) => r.id));
          await new Promise((resolve) => setTimeout(resolve, (round * 4) % 32));
          server.process.kill('SIGKILL');
          await server.exited;

          // What the crash left: runs with processes, and among them runs whose handle was not stored.
          const db = new Database(join(dataDir, 'opendlf.sqlite'), { readonly: true, fileMustExist: true });
          const rows = db
            .prepare(
              `SELECT id, state, run_handle FROM instances WHERE id IN (${runs.map(() => '?').join(',')})`,
            )
            .all(...runs.map((r) => r.id)) as { id: string; state: string; run_handle: string | null }[];
          db.close();
          for (const row of rows) {
            if (processesOfInstance(row.id).length === 0) continue;
            launched += 1;
            if (row.run_handle === null) unrecorded += 1;
          }

          server = await spawnServer(dataDir, args);
          api = new ApiClient(server.url, PROJECT);
          survivors += survivorsOf(runs.map((r) => r.id));
          for (const run of runs) {
            const status = (await api.result(run.name, run.id)).json.status as string;
            if (status !== 'FAILED' && status !== 'FINISHED') unsettled += 1;
          }
        }
      } finally {
        server.process.kill('SIGTERM');
        await server.exited;
      }
      t.diagnostic(
        `${rounds} rounds: ${launched} runs had processes at the kill, ${unrecorded} of them without a stored handle`,
      );
      assert.ok(launched > 0, 'precondition: some runs had started before the kill');
      assert.equal(survivors, 0, `${survivors} processes of ${launched} started runs survived the restarts`);
      assert.equal(unsettled, 0, `${unsettled} instances were left active after the restarts`);
    });
  });
}

/** The cgroup2 mount point (the directory of the hierarchy's root cgroup). */
function cgroupMountPoint(): string | undefined {
  const own = ownCgroupDirectory();
  const ownPath = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((line) => line.startsWith('0::'))
    ?.slice(3);
  if (own === undefined || ownPath === undefined) return undefined;
  return ownPath === '/' ? own : own.slice(0, own.length - ownPath.length);
}

describe('the runAs user and its cgroup', () => {
  const cannotSwitchUsers = ensureRunnerUser();
  it(
    'cannot move its processes out of the run cgroup, nor create cgroups in it',
    { skip: cgroupUnavailable ?? cannotSwitchUsers },
    async () => {
      const mount = cgroupMountPoint() ?? '/sys/fs/cgroup';
      const server = await startTestServer({
        localEngine: { runAs: RUNNER_USER, processContainment: 'cgroup' },
      });
      // A cgroup of root's that is no run's: a target the script might hope to be let into.
      const elsewhere = join(mount, `opendlf-fault-elsewhere-${process.pid}`);
      mkdirSync(elsewhere, { recursive: true });
      try {
        const api = server.client();
        // Every cgroup.procs it could aim at: the hierarchy's root, the server's cgroup, the run's
        // parent, another cgroup; and a sub-cgroup of its own it could create and move into.
        const content = [
          `root=${JSON.stringify(mount)}`,
          'cg=$(sed -n "s/^0:://p" /proc/self/cgroup)',
          'echo "in:$cg"',
          'parent=$(dirname "$cg"); server=$(dirname "$parent")',
          `for dir in "$root" "$root$server" "$root$parent" ${JSON.stringify(elsewhere)}; do`,
          '  echo $$ 2>/dev/null > "$dir/cgroup.procs" && echo "moved:$dir"',
          'done',
          'mkdir "$root$cg/sub" 2>/dev/null && echo "created:$root$cg/sub"',
          'echo "now:$(sed -n "s/^0:://p" /proc/self/cgroup)"',
        ].join('\n');
        await api.createScript({ name: 'escape', type: 'Shell', content, connectionName: 'local' });
        const id = await api.execute('escape');
        const done = await api.waitFor('escape', id);
        const lines = ((done.json.results?.[0]?.rows ?? []) as string[][]).map((row) => row[0] ?? '');
        const start = lines.find((line) => line.startsWith('in:'));
        assert.ok(start?.endsWith(`/${id}`), `the run starts in its own cgroup: ${lines.join(' | ')}`);
        const escapes = lines.filter((line) => line.startsWith('moved:') || line.startsWith('created:'));
        assert.deepEqual(escapes, [], 'the runAs user moved a process or created a cgroup');
        assert.equal(
          lines.find((line) => line.startsWith('now:')),
          `now:${start?.slice(3)}`,
        );
      } finally {
        rmdirSync(elsewhere);
        await server.close();
      }
    },
  );
});
