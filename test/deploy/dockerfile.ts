/**
 * A small Dockerfile parser for the static image tests (no Docker engine runs here):
 * instructions with their `\` continuations joined and comments dropped (also inside a
 * continuation, as Docker does), grouped into stages by `FROM … [AS name]`.
 */

export interface Instruction {
  /** The instruction, upper-cased: RUN, COPY, ENV, … */
  op: string;
  /** Everything after it, continuations joined by a space. */
  args: string;
  /** 1-based line where the instruction starts. */
  line: number;
}

export interface Stage {
  /** `AS name`, if any. */
  name: string | undefined;
  /** The image (or earlier stage) it is built FROM. */
  from: string;
  instructions: Instruction[];
}

const COMMENT_OR_BLANK = /^\s*(#.*)?$/;

/** Stages and their instructions; throws on text that is not an instruction. */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i] ?? '';
    if (COMMENT_OR_BLANK.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      i++;
      const next = lines[i] ?? '';
      if (COMMENT_OR_BLANK.test(next)) continue;
      line = `${line.slice(0, -1)} ${next.trim()}`;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (m === null) throw new Error(`line ${String(start)}: not an instruction: ${line}`);
    const op = (m[1] ?? '').toUpperCase();
    const args = (m[2] ?? '').trim();
    if (op === 'FROM') {
      const f = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (f === null) throw new Error(`line ${String(start)}: bad FROM ${args}`);
      stages.push({ from: f[1] ?? '', name: f[2], instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (stage === undefined) throw new Error(`line ${String(start)}: ${op} before FROM`);
    stage.instructions.push({ op, args, line: start });
  }
  return stages;
}

/** `stage` and the local stages it is built FROM, nearest first (release, base, …). */
export function stageChain(stages: Stage[], stage: Stage): Stage[] {
  const chain: Stage[] = [stage];
  for (;;) {
    const last = chain.at(-1);
    const parent = stages.find((s) => s.name !== undefined && s.name === last?.from);
    if (parent === undefined || chain.includes(parent)) return chain;
    chain.push(parent);
  }
}

/** The external images (not earlier stages) a Dockerfile builds FROM. */
export function baseImages(stages: Stage[]): string[] {
  const local = new Set(stages.map((s) => s.name));
  return stages.map((s) => s.from).filter((f) => !local.has(f));
}

/** The words of an exec-form (JSON array) ENTRYPOINT/CMD; undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((w): w is string => typeof w === 'string')) {
    return undefined;
  }
  return parsed;
}

/** The variables an ENV or ARG instruction sets: `K=v K2="v 2"`, `K v` (legacy) or `K`. */
export function variables(args: string): Map<string, string> {
  const vars = new Map<string, string>();
  if (!args.includes('=')) {
    const [key, ...rest] = args.split(/\s+/);
    if (key !== undefined && key !== '') vars.set(key, rest.join(' '));
    return vars;
  }
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)(?:=("(?:[^"\\]|\\.)*"|\S*))?/g)) {
    const value = m[2] ?? '';
    vars.set(m[1] ?? '', value.startsWith('"') ? value.slice(1, -1) : value);
  }
  return vars;
}

/** Debian packages an `apt-get install` in a RUN names (options and shell operators dropped). */
export function aptInstalled(run: string): string[] {
  const pkgs: string[] = [];
  for (const m of run.matchAll(/apt-get\s+install\s+([^&|;]*)/g)) {
    for (const w of (m[1] ?? '').split(/\s+/)) {
      if (w !== '' && !w.startsWith('-') && !w.startsWith('"')) pkgs.push(w);
    }
  }
  return pkgs;
}

/** The words of a bash array assignment `NAME=(a b  # comment\n c)` in a script. */
export function bashArray(script: string, name: string): string[] {
  const m = new RegExp(`^${name}=\\(([^)]*)\\)`, 'm').exec(script);
  if (m === null) throw new Error(`no ${name}=( … ) in the script`);
  return (m[1] ?? '')
    .split('\n')
    .map((l) => l.replace(/#.*$/, ''))
    .join(' ')
    .split(/\s+/)
    .filter((w) => w !== '');
}
