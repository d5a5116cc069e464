/**
 * What every benchmark script shares: its command line, its log, usage errors, and the revision
 * it ran.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { performance } from 'node:perf_hooks';
import { ARTIFACTS_DIR, ROOT, type ServiceProcess } from '@switchboard/devstack';

/** A bad command line: printed with the usage, exit 2. */
export class UsageError extends Error {}

/** `--help` was asked for: the usage is printed on stdout, exit 0. */
export class HelpAsked extends Error {}

const started = performance.now();

/** A progress line on stderr, stamped with the seconds since the script started. */
export function log(msg: string): void {
  const t = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${t}s] ${msg}\n`);
}

export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The commit measured (and whether the tree had changes), for the JSON results. */
export function gitRevision(): string | undefined {
  try {
    const rev = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: ROOT, encoding: 'utf8' });
    return dirty.trim() === '' ? rev : `${rev} (with uncommitted changes)`;
  } catch {
    return undefined;
  }
}

/** Ctrl-C: stop, clean up, exit 130. */
export class Interrupted extends Error {}

/**
 * The first thing that went wrong anywhere (a service or the browser exiting, a socket closed
 * by the server, an error reply, SIGINT). Every wait races against it.
 */
export class Failure {
  error: Error | undefined;
  readonly #listeners = new Set<(err: Error) => void>();

  fail(err: Error): void {
    if (this.error !== undefined) return;
    this.error = err;
    for (const l of this.#listeners) l(err);
  }

  /** Throw what failed, if anything did (between steps that are not guarded). */
  check(): void {
    if (this.error !== undefined) throw this.error;
  }

  /** `work`, unless it takes longer than `ms` or something fails first. */
  async guard<T>(what: string, ms: number, work: Promise<T>, progress?: () => string): Promise<T> {
    if (this.error !== undefined) throw this.error;
    // A step abandoned here may still reject later: that is not an unhandled rejection.
    work.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    let listener: ((err: Error) => void) | undefined;
    try {
      return await Promise.race([
        work,
        new Promise<never>((_, reject) => {
          listener = reject;
          this.#listeners.add(listener);
          timer = setTimeout(() => {
            const p = progress === undefined ? '' : ` (${progress()})`;
            reject(new Error(`${what}: timed out after ${String(ms)} ms${p}`));
          }, ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (listener !== undefined) this.#listeners.delete(listener);
    }
  }
}

/** Steps run in reverse order, once, however the run ends; errors are collected. */
export class Cleanup {
  readonly #steps: { what: string; fn: () => Promise<void> }[] = [];
  #run: Promise<string[]> | undefined;

  get size(): number {
    return this.#steps.length;
  }

  add(what: string, fn: () => Promise<void>): void {
    this.#steps.push({ what, fn });
  }

  async run(): Promise<string[]> {
    this.#run ??= (async () => {
      const errors: string[] = [];
      for (const step of this.#steps.reverse()) {
        try {
          await step.fn();
        } catch (err) {
          errors.push(`${step.what}: ${errMessage(err)}`);
        }
      }
      return errors;
    })();
    return await this.#run;
  }
}

export interface Stats {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles (p50 of 10 samples: the 5th smallest), to 0.001. */
export function stats(samples: readonly number[]): Stats | undefined {
  if (samples.length === 0) return undefined;
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  const s = Float64Array.from(samples).sort();
  const at = (p: number): number => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] ?? NaN;
  let sum = 0;
  for (const x of s) sum += x;
  return {
    n: s.length,
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    min: round(s[0] ?? NaN),
    max: round(s[s.length - 1] ?? NaN),
    mean: round(sum / s.length),
  };
}

/**
 * Stats of the first and of the last `n` samples in their order (each at most half of them):
 * how a figure changed over a run, such as joins as their room grows.
 */
export function ends(
  samples: readonly number[],
  n: number,
): { n: number; first: Stats | undefined; last: Stats | undefined } {
  const k = Math.min(n, Math.floor(samples.length / 2));
  if (k === 0) return { n: 0, first: undefined, last: undefined };
  return { n: k, first: stats(samples.slice(0, k)), last: stats(samples.slice(-k)) };
}

/** `p50 / p99` (with `max`: `p50 / p99 / max`) of latencies in ms, to 3 significant digits. */
export function fmt(s: Stats | undefined, max = false): string {
  if (s === undefined) return '—';
  const f = (x: number): string =>
    x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
  return max ? `${f(s.p50)} / ${f(s.p99)} / ${f(s.max)}` : `${f(s.p50)} / ${f(s.p99)}`;
}

/**
 * A report's table of three columns, a line a row: the first two padded to their widest cell,
 * two spaces between columns, trailing blanks trimmed.
 */
export function columns(rows: readonly (readonly [string, string, string])[]): string[] {
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`.trimEnd());
}

/** CPU used per unit of work, rounded to 3 significant digits (`scale`: 1000 for µs from ms). */
export function perUnit(
  used: Record<string, number> | undefined,
  units: number,
  scale: number,
): Record<string, number> | undefined {
  if (used === undefined || units === 0) return undefined;
  return Object.fromEntries(
    Object.entries(used).map(([k, ms]) => [k, Number(((ms * scale) / units).toPrecision(3))]),
  );
}

/** `name value, name value` of figures per process (— when not measured). */
export function cpuText(perProcess: Record<string, number> | undefined): string {
  if (perProcess === undefined) return '—';
  return Object.entries(perProcess)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

/** What a benchmark's body gets: the run's failure, its clean-up steps, and failed checks. */
export interface BenchRun {
  failure: Failure;
  cleanup: Cleanup;
  /** Checks that failed without stopping the run: printed, and the exit code is 1. */
  anomalies: string[];
  /** Processes started, whose last output is shown if the run fails. */
  services: ServiceProcess[];
}

/**
 * Run a benchmark's body and exit: 0 (also on HelpAsked: the usage is printed), 1 (a failure
 * or a failed check; the services' last output is shown), 2 (a UsageError: the usage is
 * printed) or 130 (Ctrl-C or SIGTERM: the step in progress unwinds, then everything is cleaned
 * up; a second signal exits at once). Clean-up steps run however the body ends.
 */
export async function runBench(
  usage: () => string,
  body: (run: BenchRun) => Promise<number>,
): Promise<never> {
  const run: BenchRun = {
    failure: new Failure(),
    cleanup: new Cleanup(),
    anomalies: [],
    services: [],
  };
  let interrupts = 0;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (++interrupts > 1) process.exit(130);
      log(`${sig}: stopping (again to exit at once)`);
      // Every guarded wait throws this, so the run unwinds and cleans up after the step in
      // progress. Should that hang, clean up from here.
      run.failure.fail(new Interrupted(`interrupted by ${sig}`));
      setTimeout(() => {
        log('still stopping after 30 s; cleaning up from the signal handler');
        void run.cleanup.run().then((errors) => {
          for (const e of errors) log(`clean-up: ${e}`);
          process.exit(130);
        });
      }, 30_000).unref();
    });
  }
  let code: number;
  try {
    code = await body(run);
  } catch (err) {
    const usageCode = usageExitCode(err, usage);
    if (usageCode !== undefined) {
      code = usageCode;
    } else if (err instanceof Interrupted || run.failure.error instanceof Interrupted) {
      code = 130;
    } else {
      log(`FAILED: ${errMessage(err)}`);
      for (const a of run.anomalies.slice(0, 20)) log(`failed check: ${a}`);
      for (const svc of run.services) {
        const lines = svc.process.output().split('\n').slice(-30).join('\n  ');
        if (lines.trim() !== '') log(`last output of ${svc.process.name}:\n  ${lines}`);
      }
      code = 1;
    }
  }
  if (run.cleanup.size > 0) log('stopping what was started');
  const errors = await run.cleanup.run();
  for (const e of errors) log(`clean-up: ${e}`);
  process.exit(errors.length > 0 && code === 0 ? 1 : code);
}

/** The machine a benchmark ran on, for its results. */
export function machineInfo(): Record<string, unknown> {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

/** A report's line on the machine: `machine: <cores> × <CPU model>, Node <version>`. */
export function machineLine(): string {
  return `machine: ${String(os.cpus().length)} × ${os.cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`;
}

/**
 * Write a run's results to `artifacts/bench/<benchmark>-<start time>.json` (with the
 * revision and the machine; `machine` adds to the latter) and say where.
 */
export function writeResults(
  benchmark: string,
  startedAt: Date,
  fields: Record<string, unknown> & { machine?: Record<string, unknown> },
): string {
  const dir = join(ARTIFACTS_DIR, 'bench');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${benchmark}-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const { machine, ...rest } = fields;
  const result = {
    benchmark,
    startedAt: startedAt.toISOString(),
    revision: gitRevision(),
    machine: { ...machineInfo(), ...machine },
    ...rest,
  };
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nResults written to ${file}\n`);
  return file;
}

/**
 * The end of a run: its report (`text`) on stdout, then the checks that failed (the first 20);
 * the results written with `failedChecks` and `text` after `fields`. Returns the exit code: 1
 * when a check failed, else 0.
 */
export function finishRun(
  benchmark: string,
  startedAt: Date,
  { text, anomalies }: { text: string; anomalies: string[] },
  fields: Record<string, unknown> & { machine?: Record<string, unknown> },
): number {
  process.stdout.write(`\n${text}\n`);
  if (anomalies.length > 0) {
    process.stdout.write(`\nFAILED CHECKS (${anomalies.length}):\n`);
    for (const a of anomalies.slice(0, 20)) process.stdout.write(`  ${a}\n`);
  }
  writeResults(benchmark, startedAt, { ...fields, failedChecks: anomalies, text });
  return anomalies.length > 0 ? 1 : 0;
}

/** A numeric flag: `--<name>`, or its environment variable, or its default. */
export interface NumberFlag {
  env: string;
  def: number;
  min: number;
  help: string;
}

/**
 * A string flag: `--<name>`, or its environment variable; `def` says what neither given means
 * (for the usage text).
 */
export interface StringFlag {
  type: 'string';
  env: string;
  def?: string;
  help: string;
}

/** A switch: `--<name>`, or its environment variable set to 1, true or yes. */
export interface SwitchFlag {
  type: 'boolean';
  env: string;
  help: string;
}

export type Flag = NumberFlag | StringFlag | SwitchFlag;

/** The names of the flags of `F` that are a `T`. */
type NamesOf<F, T> = { [K in keyof F]: F[K] extends T ? K : never }[keyof F] & string;

/** A command line, read: each flag's value, from the command line or its environment variable. */
export interface Flags<F> {
  num(name: NamesOf<F, NumberFlag>): number;
  str(name: NamesOf<F, StringFlag>): string | undefined;
  on(name: NamesOf<F, SwitchFlag>): boolean;
}

/** A benchmark's command line: its usage text, and the parser of its flags. */
export interface CommandLine<F> {
  usage: () => string;
  /**
   * Parse `argv` (after an optional `--`; default: this process's arguments). Throws a
   * UsageError on bad flags, HelpAsked on `--help` (runBench prints the usage for either).
   */
  parse: (argv?: string[]) => Flags<F>;
}

/**
 * The command line of benchmark `name`: its `flags` (listed in this order by the usage, each
 * with its help, environment variable and default), and `--help`. Numeric flags are whole
 * numbers, or with `kind` 'number' any finite number.
 */
export function commandLine<const F extends Record<string, Flag>>(
  name: string,
  flags: F,
  kind: 'integer' | 'number' = 'integer',
): CommandLine<F> {
  const usage = (): string => {
    const width = Math.max(...Object.keys(flags).map((n) => n.length)) + 2;
    const indent = `\n${' '.repeat(width + 5)}`;
    const where = (f: Flag): string => {
      if (!('type' in f)) return `env ${f.env}, default ${String(f.def)}`;
      if (f.type === 'boolean') return `env ${f.env}=1`;
      return f.def === undefined ? `env ${f.env}` : `env ${f.env}, default ${f.def}`;
    };
    const line = (flag: string, f: Flag): string =>
      `  --${flag.padEnd(width)} ${f.help.replaceAll('\n', indent)} (${where(f)})`;
    return [
      `usage: ./run bench ${name} [-- flags]`,
      ...Object.entries(flags).map(([flag, f]) => line(flag, f)),
    ].join('\n');
  };
  const parse = (argv = process.argv.slice(2)): Flags<F> => {
    // `./run bench <name> -- --flag 3` passes the `--` on.
    const args = argv[0] === '--' ? argv.slice(1) : argv;
    const options: NonNullable<ParseArgsConfig['options']> = {
      help: { type: 'boolean', short: 'h' },
    };
    for (const [flag, f] of Object.entries(flags))
      options[flag] = { type: 'type' in f ? f.type : 'string' };
    const { values } = parseOrUsage({ args, strict: true, allowPositionals: false, options });
    if (values['help'] === true) throw new HelpAsked();
    const given = (flag: string): string | undefined => {
      const v = values[flag];
      return typeof v === 'string' ? v : undefined;
    };
    return {
      num: (flag) => readNumber(flag, flags[flag] as NumberFlag, given(flag), kind),
      str: (flag) => given(flag) ?? process.env[(flags[flag] as StringFlag).env],
      on: (flag) =>
        values[flag] === true ||
        ['1', 'true', 'yes'].includes(process.env[(flags[flag] as SwitchFlag).env] ?? ''),
    };
  };
  return { usage, parse };
}

/**
 * The exit code of a command line's error: 0 for HelpAsked (the usage on stdout), 2 for a
 * UsageError (its message and the usage on stderr); undefined for any other error.
 */
export function usageExitCode(err: unknown, usage: () => string): number | undefined {
  if (err instanceof HelpAsked) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (err instanceof UsageError) {
    process.stderr.write(`${err.message}\n\n${usage()}\n`);
    return 2;
  }
  return undefined;
}

/** parseArgs, its errors as UsageError (printed with the usage, exit 2). */
function parseOrUsage<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new UsageError(errMessage(err), { cause: err });
  }
}

/** The value of numeric flag `name` (`raw` from the command line, else its environment). */
function readNumber(
  name: string,
  flag: NumberFlag,
  raw: string | undefined,
  kind: 'integer' | 'number',
): number {
  const text = raw ?? process.env[flag.env];
  if (text === undefined || text === '') return flag.def;
  const n = Number(text);
  const ok = kind === 'integer' ? Number.isInteger(n) : Number.isFinite(n);
  if (!ok || n < flag.min) {
    throw new UsageError(
      `--${name} (${flag.env}) must be ${kind === 'integer' ? 'an integer' : 'a number'} >= ${String(flag.min)} (got ${text})`,
    );
  }
  return n;
}

/** Run `fn` over `items`, `limit` at a time; stops starting new ones after the first error. */
export async function pool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
