/** The mediasoup worker processes of a media node (its children, from /proc). */
import { readFile, readdir } from 'node:fs/promises';
import type { ServiceProcess } from '@switchboard/devstack';

export async function workerPids(media: ServiceProcess): Promise<number[]> {
  const parent = media.process.pid;
  if (parent === undefined) return [];
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (Number(rest[1]) === parent && comm.startsWith('mediasoup-worke'))
        pids.push(Number(entry));
    } catch {
      // the process exited meanwhile
    }
  }
  return pids.sort((x, y) => x - y);
}
