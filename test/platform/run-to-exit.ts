/**
 * A service run to its exit on its own, without a platform: how the tests see a service refuse
 * its configuration (exit 78, naming the variable).
 */
import { ManagedProcess, NODE, serviceEntry } from '@switchboard/devstack';
import type { ServiceName } from '@switchboard/protocol';

/**
 * Run `service` with exactly `env` (and PATH, to find its tools) until it exits: its exit code
 * (null when a signal ended it) and its output. `label` names the process in failures (default:
 * the service); `onLine` is given every line of output as it comes.
 */
export async function runToExit(
  service: ServiceName,
  env: Record<string, string>,
  opts: { label?: string; onLine?: (line: string) => void } = {},
): Promise<{ code: number | null; output: string }> {
  const proc = new ManagedProcess(opts.label ?? service, NODE, [serviceEntry(service)], {
    env: { PATH: process.env['PATH'] ?? '', ...env },
    onLine: opts.onLine,
  });
  const exit = await proc.exited;
  return { code: exit.code, output: proc.output() };
}
