/**
 * leaks.ts: a process started with the run's mark is found, also once re-parented to init
 * (its starter gone), and `leftBehind` kills what is still alive after the grace time; one
 * that exits within it is not reported.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { RUN_MARK_ENV, leftBehind, marked } from '../src/leaks.ts';
import { pidAlive } from '../src/platform.ts';

describe('processes a run leaves behind', () => {
  it('finds a marked orphan, kills it, and leaves unmarked processes alone', async () => {
    const mark = `leak-test-${String(process.pid)}-${String(Date.now())}`;
    // A shell that starts a sleeper in the background and exits: the sleeper is orphaned.
    const starter = spawn('sh', ['-c', 'sleep 300 & echo $!'], {
      env: { ...process.env, [RUN_MARK_ENV]: mark },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pid = await new Promise<number>((resolve) => {
      starter.stdout.once('data', (b: Buffer) => {
        resolve(Number(b.toString().trim()));
      });
    });
    const unmarked = spawn('sleep', ['300'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => starter.once('exit', resolve));
      expect(marked(mark).map((p) => p.pid)).toEqual([pid]);
      expect(marked(mark)[0]?.command).toBe('sleep 300');

      const left = await leftBehind(mark, 300);
      expect(left.map((p) => p.pid)).toEqual([pid]);
      // Killed: gone from the marked ones (a zombie until init reaps it holds no environment).
      await expect.poll(() => marked(mark)).toEqual([]);
      expect(unmarked.pid !== undefined && pidAlive(unmarked.pid)).toBe(true);
    } finally {
      unmarked.kill('SIGKILL');
      if (marked(mark).length > 0) process.kill(pid, 'SIGKILL');
    }
  });

  it('does not report a process that exits within the grace time', async () => {
    const mark = `leak-test-${String(process.pid)}-${String(Date.now())}-b`;
    spawn('sleep', ['0.5'], { env: { ...process.env, [RUN_MARK_ENV]: mark }, stdio: 'ignore' });
    expect(marked(mark)).toHaveLength(1);
    expect(await leftBehind(mark, 5000)).toEqual([]);
  });
});
