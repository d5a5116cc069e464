/**
 * Child processes owned by the dev tooling and the tests: their output is kept (the last
 * lines, for failure messages), optionally echoed with a prefix or written to a file, and
 * every one still running when this process exits is killed, so none is left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, readdirSync, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Append all output to this file. */
  logFile?: string;
  /** Called with every output line (stdout and stderr). */
  onLine?: (line: string) => void;
  /** Lines of output kept in memory. */
  keepLines?: number;
  /**
   * Own process group: a Ctrl-C at the terminal then reaches only the parent, which stops
   * its children in order (services before the NATS and PostgreSQL they need).
   */
  detached?: boolean;
}

export class ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal) once the process is gone. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #lines: string[] = [];
  readonly #keep: number;
  readonly #log: WriteStream | undefined;
  readonly #waiters = new Set<{ re: RegExp; resolve: (line: string) => void }>();
  #exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(name: string, command: string, args: readonly string[], opts: SpawnOptions = {}) {
    this.name = name;
    this.#keep = opts.keepLines ?? 400;
    this.#log =
      opts.logFile === undefined ? undefined : createWriteStream(opts.logFile, { flags: 'a' });
    this.#log?.on('error', (err) => {
      this.#lines.push(`[log file error] ${err.message}`);
    });
    this.child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: opts.detached ?? false,
    });
    live.add(this);
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        this.#lines.push(line);
        if (this.#lines.length > this.#keep) this.#lines.shift();
        this.#log?.write(`${line}\n`);
        opts.onLine?.(line);
        for (const w of this.#waiters) {
          if (w.re.test(line)) {
            this.#waiters.delete(w);
            w.resolve(line);
          }
        }
      });
    }
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err) => {
        this.#lines.push(`[spawn error] ${err.message}`);
        this.#exitInfo ??= { code: -1, signal: null };
        live.delete(this);
        resolve(this.#exitInfo);
      });
      this.child.once('close', (code, signal) => {
        this.#exitInfo ??= { code, signal };
        live.delete(this);
        this.#log?.end();
        resolve(this.#exitInfo);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.#exitInfo === undefined;
  }

  /** The last lines of output. */
  output(): string {
    return this.#lines.join('\n');
  }

  /** Resolves with the first output line (from now on) matching `re`. */
  async waitForLine(re: RegExp, timeoutMs = 30_000): Promise<string> {
    const existing = this.#lines.find((l) => re.test(l));
    if (existing !== undefined) return existing;
    let timer: NodeJS.Timeout | undefined;
    let waiter: { re: RegExp; resolve: (line: string) => void } | undefined;
    try {
      return await Promise.race([
        new Promise<string>((resolve) => {
          waiter = { re, resolve };
          this.#waiters.add(waiter);
        }),
        this.exited.then(({ code, signal }) => {
          throw new Error(
            `${this.name} exited (code ${code}, signal ${signal}) before printing ${re}:\n${this.output()}`,
          );
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(
              new Error(
                `${this.name}: no line matching ${re} within ${timeoutMs} ms:\n${this.output()}`,
              ),
            );
          }, timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (waiter !== undefined) this.#waiters.delete(waiter);
    }
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** Send `sig` and wait for the exit; SIGKILL after `timeoutMs`. */
  async stop(
    sig: NodeJS.Signals = 'SIGTERM',
    timeoutMs = 15_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return await this.exited;
    this.child.kill(sig);
    const timer = setTimeout(() => {
      this.child.kill('SIGKILL');
    }, timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async kill(): Promise<void> {
    await this.stop('SIGKILL');
  }
}

const live = new Set<ManagedProcess>();
process.on('exit', () => {
  for (const p of live) p.child.kill('SIGKILL');
});

/** The pids of the mediasoup-worker processes whose parent is `parent` (from /proc), sorted. */
export function mediasoupWorkerPids(parent: number | undefined): number[] {
  if (parent === undefined) return [];
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may contain spaces and parentheses.
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      // comm is cut at 15 characters: "mediasoup-worke".
      if (ppid === parent && comm.startsWith('mediasoup-worke')) pids.push(Number(entry));
    } catch {
      // the process exited while we looked
    }
  }
  return pids.sort((a, b) => a - b);
}
