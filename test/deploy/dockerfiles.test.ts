/**
 * The service images, checked statically (no Docker engine runs here): each
 * services/<name>/Dockerfile is parsed into stages and instructions and held to rules of
 * hadolint's kind, plus what this project needs of them — ports from the config schemas, the
 * worker's libraries from ./run's RUNTIME_DEBS, the pinned Node and pnpm of package.json.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '@switchboard/devstack';
import {
  EventsConfig,
  GatewayConfig,
  MediaConfig,
  RoomsConfig,
  type ServiceName,
} from '@switchboard/protocol';

interface Instruction {
  op: string;
  args: string;
  line: number;
}
interface Stage {
  name: string | undefined;
  from: string;
  instructions: Instruction[];
}

/** Instructions (continuations joined, comments dropped), grouped by FROM. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i] ?? '';
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      i++;
      const next = lines[i] ?? '';
      if (/^\s*#/.test(next)) continue;
      line = `${line.slice(0, -1)} ${next.trim()}`;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (m === null) throw new Error(`line ${String(start)}: not an instruction: ${line}`);
    const op = (m[1] ?? '').toUpperCase();
    const args = (m[2] ?? '').trim();
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
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

const SERVICES: ServiceName[] = ['gateway', 'rooms', 'media', 'events'];
const CONFIGS = {
  gateway: GatewayConfig,
  rooms: RoomsConfig,
  media: MediaConfig,
  events: EventsConfig,
};
const defaultOf = (name: ServiceName, key: string): unknown =>
  (CONFIGS[name].properties as Record<string, { default?: unknown }>)[key]?.default;

const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const pkg = JSON.parse(read('package.json')) as {
  packageManager: string;
  engines: { node: string };
};
const runtimeDebs = ((/RUNTIME_DEBS=\(([^)]*)\)/.exec(read('run')) ?? [])[1] ?? '')
  .split(/\s+/)
  .filter((w) => w !== '');

describe.each(SERVICES)('services/%s/Dockerfile', (name) => {
  const stages = parseDockerfile(read(`services/${name}/Dockerfile`));
  const final = stages.at(-1);
  if (final === undefined) throw new Error('no stage');
  const all = stages.flatMap((s) => s.instructions);
  const ofFinal = (op: string): Instruction[] => final.instructions.filter((i) => i.op === op);
  const runtime = (() => {
    // The final stage and the local stages it is built FROM (base → release).
    const chain: Stage[] = [final];
    let from = final.from;
    for (;;) {
      const parent = stages.find((s) => s.name === from);
      if (parent === undefined) return chain;
      chain.push(parent);
      from = parent.from;
    }
  })();

  it('pins every base image (a tag other than latest, or a digest) to Node 22', () => {
    const local = new Set(stages.map((s) => s.name));
    for (const s of stages.filter((st) => !local.has(st.from))) {
      expect(s.from).toMatch(/(@sha256:[0-9a-f]{64}|:[^:@]+)$/);
      expect(s.from).not.toMatch(/:latest$/);
      expect(s.from).toMatch(/^node:22\.\d+\.\d+-/);
    }
    const [, major, minor] = /^>=(\d+)\.(\d+)/.exec(pkg.engines.node) ?? [];
    const tag = /^node:(\d+)\.(\d+)/.exec(stages[0]?.from ?? '');
    expect(tag?.[1]).toBe(major);
    expect(Number(tag?.[2])).toBeGreaterThanOrEqual(Number(minor));
  });

  it('is multi-stage: a builder, then a named runtime stage that is not it', () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    expect(stages.some((s) => s.name === 'builder')).toBe(true);
    expect(final.name).toBeDefined();
    expect(final.name).not.toBe('builder');
    // Nothing of the toolchain in the runtime: no install of build tools, no pnpm.
    for (const i of runtime.flatMap((s) => s.instructions)) {
      expect(i.args).not.toMatch(/\b(g\+\+|gcc|make|meson|pnpm)\b/);
    }
  });

  it('runs as the numeric non-root user 10001', () => {
    const user = ofFinal('USER').at(-1);
    expect(user?.args).toMatch(/^10001(:10001)?$/);
    const runtimeRuns = runtime.flatMap((s) => s.instructions).filter((i) => i.op === 'RUN');
    expect(runtimeRuns.some((i) => /useradd .*--uid 10001/.test(i.args))).toBe(true);
  });

  it('starts node on the service in exec form (signals reach it: graceful SIGTERM)', () => {
    const entry = ofFinal('ENTRYPOINT').at(-1) ?? ofFinal('CMD').at(-1);
    expect(entry).toBeDefined();
    expect(JSON.parse(entry?.args ?? '')).toEqual(['node', `services/${name}/src/main.ts`]);
  });

  it('exposes the HTTP port its config defaults to (and the media node its RTC ports)', () => {
    const exposed = ofFinal('EXPOSE').flatMap((i) => i.args.split(/\s+/));
    expect(exposed).toContain(String(defaultOf(name, 'HTTP_PORT')));
    if (name === 'media') {
      const rtc = String(defaultOf('media', 'MEDIASOUP_RTC_PORT'));
      expect(exposed).toEqual(expect.arrayContaining([`${rtc}/udp`, `${rtc}/tcp`]));
    }
    const env = runtime.flatMap((s) => s.instructions).filter((i) => i.op === 'ENV');
    expect(env.map((e) => e.args).join(' ')).toMatch(/HTTP_HOST=0\.0\.0\.0/);
  });

  it('follows the usual hygiene (COPY not ADD of URLs, apt lists removed, no sudo, no secrets)', () => {
    for (const i of all) {
      if (i.op === 'ADD') expect(i.args).not.toMatch(/https?:\/\//);
      if (i.op === 'RUN' && /apt-get install/.test(i.args)) {
        expect(i.args).toMatch(/--no-install-recommends/);
        expect(i.args).toMatch(/rm -rf \/var\/lib\/apt\/lists/);
      }
      if (i.op === 'RUN') expect(i.args).not.toMatch(/\bsudo\b/);
      if (i.op === 'ENV' || i.op === 'ARG') {
        expect(i.args).not.toMatch(/(SECRET|PASSWORD|TOKEN|PRIVATE|API_KEY)/i);
      }
    }
  });

  it('installs from the lockfile with the pinned pnpm', () => {
    const pnpm = pkg.packageManager.replace(/^pnpm@/, '');
    const runs = all.filter((i) => i.op === 'RUN').map((i) => i.args);
    expect(runs.some((r) => r.includes(`pnpm@${pnpm}`))).toBe(true);
    const installs = runs.filter((r) => /pnpm install/.test(r));
    expect(installs.length).toBeGreaterThan(0);
    for (const r of installs) {
      expect(r).toMatch(/--frozen-lockfile/);
      expect(r).toMatch(new RegExp(`--filter @switchboard/${name}\\.\\.\\.`));
    }
    // What the release stage carries comes from a production-only install.
    expect(runs.some((r) => /pnpm install .*--prod/.test(r))).toBe(true);
  });

  if (name === 'media') {
    it("carries the worker and every library of ./run's RUNTIME_DEBS that it loads", () => {
      const libs = runtimeDebs.filter((d) => d.startsWith('lib'));
      expect(libs.length).toBeGreaterThan(3);
      const installed = runtime
        .flatMap((s) => s.instructions)
        .filter((i) => i.op === 'RUN' && /apt-get install/.test(i.args))
        .map((i) => i.args)
        .join(' ');
      for (const lib of libs) {
        expect(installed, lib).toMatch(new RegExp(`\\b${lib}\\b`));
      }
      const copy = ofFinal('COPY').find((i) => i.args.includes('mediasoup-worker'));
      expect(copy?.args).toMatch(/--from=builder/);
      const env = ofFinal('ENV')
        .map((i) => i.args)
        .join(' ');
      expect(env).toMatch(/MEDIASOUP_WORKER_BIN=\/\S+mediasoup-worker/);
      expect(env).toMatch(/MEDIASOUP_LISTEN_IP=0\.0\.0\.0/);
    });
  }
});

describe('.dockerignore', () => {
  it('keeps dependencies, state and build output out of the context', () => {
    const lines = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(lines).toEqual(
      expect.arrayContaining(['**/node_modules', '.git', '.local', 'artifacts']),
    );
  });

  it('parses continuations and refuses what is not an instruction', () => {
    const stages = parseDockerfile('FROM a:1 AS x\nRUN a \\\n  # note\n  && b\nFROM x\nUSER 1\n');
    expect(stages).toEqual([
      { from: 'a:1', name: 'x', instructions: [{ op: 'RUN', args: 'a  && b', line: 2 }] },
      { from: 'x', name: undefined, instructions: [{ op: 'USER', args: '1', line: 6 }] },
    ]);
    expect(() => parseDockerfile('RUN x\n')).toThrow(/before FROM/);
  });
});
