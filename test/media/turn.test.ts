/**
 * TURN credentials in `joinR`, against a real coturn (Debian's `turnserver`, started here on
 * loopback with `use-auth-secret`): the gateway's `iceServers` let Chromium allocate a relay
 * (a `relay` candidate, and a data channel between two relay-only peers through coturn);
 * the same username with a credential from the wrong secret gets no relay (coturn: 401).
 * Plus unit tests of the credential (coturn's REST scheme) and the start-up checks.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import {
  ManagedProcess,
  artifactDir,
  freePort,
  startPlatform,
  tcpReachable,
  uniquePrefix,
  waitFor,
  type Platform,
} from '@switchboard/devstack';
import type { JoinReply } from '@switchboard/protocol';
import { IceServers, turnCredential } from '../../services/gateway/src/turn.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../e2e/chromium.ts';
import { runToExit } from '../platform/run-to-exit.ts';
import { TestClient } from '../signaling/client.ts';

/** Debian's coturn (`./run test` installs the package). */
const TURNSERVER = '/usr/bin/turnserver';
const REALM = 'switchboard.test';
const TTL_S = 600;

type IceServer = NonNullable<JoinReply['iceServers']>[number];

/** A regular expression matching `text` literally inside a coturn log line. */
function logLine(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

describe('TURN credentials (coturn REST scheme)', () => {
  it('matches a known vector (openssl dgst -sha1 -hmac … | base64)', () => {
    expect(turnCredential('switchboard-turn-secret', 'alice', 1_700_000_000)).toEqual({
      username: '1700000000:alice',
      credential: 'mnHGsWQbEIUM8OXQpafeE4vjWbc=',
    });
    // A userId may contain the separator and non-ASCII text: HMAC over its UTF-8 bytes.
    expect(turnCredential('switchboard-turn-secret', 'ünïcode:user', 1_700_086_400)).toEqual({
      username: '1700086400:ünïcode:user',
      credential: 'mLLVNOa1DujearfAUWlmu2DciXs=',
    });
  });

  it('gives STUN URLs bare and TURN URLs with credentials expiring after the TTL', () => {
    const now = 1_700_000_000_500;
    const ice = IceServers.fromConfig(
      {
        TURN_URLS: ['stun:stun.example:3478', 'turn:t.example:3478', 'turns:t.example:5349'],
        TURN_SECRET: 's3cret',
        TURN_CREDENTIAL_TTL_S: 3600,
      },
      () => now,
    );
    const username = `${String(1_700_000_000 + 3600)}:bob`;
    expect(ice.for('bob', now + 86_400_000)).toEqual([
      { urls: ['stun:stun.example:3478'] },
      {
        urls: ['turn:t.example:3478', 'turns:t.example:5349'],
        username,
        credential: createHmac('sha1', 's3cret').update(username).digest('base64'),
      },
    ]);
  });

  it('never gives TURN credentials that outlive the token', () => {
    const now = 1_700_000_000_500;
    const ice = IceServers.fromConfig(
      { TURN_URLS: ['turn:t.example:3478'], TURN_SECRET: 's3cret', TURN_CREDENTIAL_TTL_S: 3600 },
      () => now,
    );
    // The token expires in 10 minutes: so do the credentials.
    const servers = ice.for('bob', now + 600_000 - 500);
    expect(servers?.[0]?.username).toBe(`${String(1_700_000_000 + 600)}:bob`);
  });

  it('gives nothing without URLs, and STUN alone needs no secret', () => {
    expect(
      IceServers.fromConfig({ TURN_URLS: [], TURN_CREDENTIAL_TTL_S: 60 }).for(
        'a',
        Date.now() + 60_000,
      ),
    ).toBe(undefined);
    expect(
      IceServers.fromConfig({ TURN_URLS: ['stun:s.example'], TURN_CREDENTIAL_TTL_S: 60 }).for(
        'a',
        Date.now() + 60_000,
      ),
    ).toEqual([{ urls: ['stun:s.example'] }]);
    expect(() =>
      IceServers.fromConfig({ TURN_URLS: ['turn:t.example'], TURN_CREDENTIAL_TTL_S: 60 }),
    ).toThrow(/TURN_SECRET: is required/);
  });

  it('the gateway refuses to start with TURN URLs but no secret, or a bad URL (exit 78)', async () => {
    const run = async (env: Record<string, string>) =>
      await runToExit('gateway', {
        HTTP_PORT: '0',
        NATS_URL: 'nats://127.0.0.1:1',
        AUTH_HS256_SECRET: 'x'.repeat(32),
        ...env,
      });
    const [noSecret, badUrl, shortTtl] = await Promise.all([
      run({ TURN_URLS: '["turn:127.0.0.1:3478"]' }),
      run({ TURN_URLS: '["http://127.0.0.1:3478"]', TURN_SECRET: 'x' }),
      run({ TURN_CREDENTIAL_TTL_S: '5' }),
    ]);
    expect(noSecret.code).toBe(78);
    expect(noSecret.output).toMatch(/TURN_SECRET: is required/);
    expect(badUrl.code).toBe(78);
    expect(badUrl.output).toMatch(/TURN_URLS: /);
    expect(shortTtl.code).toBe(78);
    expect(shortTtl.output).toMatch(/TURN_CREDENTIAL_TTL_S: /);
  });
});

// ------------------------------------------------------------------------ against coturn

/** What the page saw while gathering candidates of a relay-only peer connection. */
interface Gathered {
  candidates: string[];
  errors: { code: number; text: string; url: string }[];
  complete: boolean;
}

/** The part of RTCPeerConnection the page code uses (the test's tsconfig has no DOM lib). */
interface Pc {
  iceGatheringState: string;
  connectionState: string;
  onicecandidate:
    ((e: { candidate: { candidate: string; toJSON(): unknown } | null }) => void) | null;
  onicecandidateerror: ((e: { errorCode: number; errorText: string; url: string }) => void) | null;
  onicegatheringstatechange: (() => void) | null;
  ondatachannel: ((e: { channel: Dc }) => void) | null;
  createDataChannel(label: string): Dc;
  createOffer(): Promise<unknown>;
  createAnswer(): Promise<unknown>;
  setLocalDescription(d?: unknown): Promise<void>;
  setRemoteDescription(d: unknown): Promise<void>;
  addIceCandidate(c: unknown): Promise<void>;
  readonly localDescription: unknown;
  close(): void;
}
interface Dc {
  onopen: (() => void) | null;
  onmessage: ((e: { data: string }) => void) | null;
  send(data: string): void;
}
type PcCtor = new (cfg: { iceServers: IceServer[]; iceTransportPolicy: 'relay' }) => Pc;

/** Offer from a relay-only peer connection; the candidates gathered within `timeoutMs`. */
async function gather(page: Page, iceServers: IceServer[], timeoutMs = 10_000): Promise<Gathered> {
  return await page.evaluate(
    async ({ iceServers, timeoutMs }) => {
      const { RTCPeerConnection } = globalThis as unknown as { RTCPeerConnection: PcCtor };
      const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
      const out: Gathered = { candidates: [], errors: [], complete: false };
      pc.onicecandidate = (e) => {
        if (e.candidate !== null && e.candidate.candidate !== '') {
          out.candidates.push(e.candidate.candidate);
        }
      };
      pc.onicecandidateerror = (e) => {
        out.errors.push({ code: e.errorCode, text: e.errorText, url: e.url });
      };
      const complete = new Promise<void>((resolve) => {
        pc.onicegatheringstatechange = () => {
          if (pc.iceGatheringState === 'complete') resolve();
        };
      });
      pc.createDataChannel('probe');
      await pc.setLocalDescription(await pc.createOffer());
      await Promise.race([complete, new Promise((r) => setTimeout(r, timeoutMs))]);
      out.complete = pc.iceGatheringState === 'complete';
      pc.close();
      return out;
    },
    { iceServers, timeoutMs },
  );
}

/** Two relay-only peer connections in the page; a data channel message from one to the other. */
async function relayedDataChannel(page: Page, iceServers: IceServer[]): Promise<string> {
  return await page.evaluate(async (iceServers) => {
    const { RTCPeerConnection } = globalThis as unknown as { RTCPeerConnection: PcCtor };
    const a = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
    const b = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
    a.onicecandidate = (e) => {
      if (e.candidate !== null) void b.addIceCandidate(e.candidate.toJSON());
    };
    b.onicecandidate = (e) => {
      if (e.candidate !== null) void a.addIceCandidate(e.candidate.toJSON());
    };
    const received = new Promise<string>((resolve) => {
      b.ondatachannel = (e) => {
        e.channel.onmessage = (m) => {
          resolve(m.data);
        };
      };
    });
    const channel = a.createDataChannel('through-turn');
    channel.onopen = () => {
      channel.send('hello through coturn');
    };
    await a.setLocalDescription();
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription();
    await a.setRemoteDescription(b.localDescription);
    const message = await Promise.race([
      received,
      new Promise<string>((r) =>
        setTimeout(() => {
          r(`timed out: a ${a.connectionState}, b ${b.connectionState}`);
        }, 15_000),
      ),
    ]);
    a.close();
    b.close();
    return message;
  }, iceServers);
}

describe('TURN through the gateway, against coturn', () => {
  const secret = randomBytes(24).toString('base64url');
  let dir: string;
  let coturn: ManagedProcess;
  let turnPort: number;
  let platform: Platform;
  let browser: Browser;
  /** What beforeAll started, stopped in reverse order (whatever got started). */
  const cleanup: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    if (!existsSync(TURNSERVER)) {
      throw new Error(`${TURNSERVER} not found: Debian package coturn (./run test installs it)`);
    }
    dir = mkdtempSync(join(tmpdir(), 'sb-coturn-'));
    cleanup.push(() => {
      rmSync(dir, { recursive: true, force: true });
    });
    turnPort = await freePort();
    const logFile = join(artifactDir('media'), 'coturn.log');
    rmSync(logFile, { force: true });
    coturn = new ManagedProcess(
      'coturn',
      TURNSERVER,
      [
        '-n', // no configuration file (not /etc/turnserver.conf): the command line only
        `--listening-ip=127.0.0.1`,
        `--listening-port=${String(turnPort)}`,
        `--relay-ip=127.0.0.1`,
        '--use-auth-secret',
        `--static-auth-secret=${secret}`,
        `--realm=${REALM}`,
        '--no-tls',
        '--no-dtls',
        '--no-cli',
        '--no-rfc5780',
        // Both peers of the relayed data channel are this machine's relay addresses.
        '--allow-loopback-peers',
        '--log-file=stdout',
        '-v', // sessions, allocations and 401s in the log
        '--simple-log',
        // Its own files, not the system's /var/lib/turn/turndb and /var/run pid file.
        `--db=${join(dir, 'turndb')}`,
        `--pidfile=${join(dir, 'turnserver.pid')}`,
      ],
      { cwd: dir, logFile, keepLines: 5000 },
    );
    cleanup.push(async () => {
      await coturn.stop();
    });
    await waitFor('coturn to listen', async () => {
      if (!coturn.running) throw new Error(`coturn exited:\n${coturn.output()}`);
      return await tcpReachable('127.0.0.1', turnPort);
    });

    platform = await startPlatform({
      natsUrl: inject('natsUrl'),
      subjectPrefix: uniquePrefix('turn'),
      pgServerUrl: inject('pgServerUrl'),
      names: ['rooms', 'gateway'],
      env: {
        TURN_URLS: JSON.stringify([
          `stun:127.0.0.1:${String(turnPort)}`,
          `turn:127.0.0.1:${String(turnPort)}?transport=udp`,
        ]),
        TURN_SECRET: secret,
        TURN_CREDENTIAL_TTL_S: String(TTL_S),
      },
    });
    cleanup.push(async () => {
      await platform.stop();
    });
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    cleanup.push(async () => {
      await browser.close();
    });
  });

  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('joinR carries the ICE servers; coturn allocates a relay with them, not with a forged one', async () => {
    const joinedAt = Math.floor(Date.now() / 1000);
    const client = await TestClient.join(platform.get('gateway').url, 'turn-room', 'alice');
    const reply = client.frames.find((f) => f.a === 'joinR')?.d as JoinReply;
    client.close();
    const iceServers = reply.iceServers ?? [];

    // STUN bare; TURN with "<expiry>:<userId>" and base64(HMAC-SHA1(secret, username)).
    expect(iceServers).toHaveLength(2);
    expect(iceServers[0]).toEqual({ urls: [`stun:127.0.0.1:${String(turnPort)}`] });
    const turn = iceServers[1];
    expect(turn?.urls).toEqual([`turn:127.0.0.1:${String(turnPort)}?transport=udp`]);
    const username = turn?.username ?? '';
    const match = /^(\d+):alice$/.exec(username);
    expect(match, username).not.toBeNull();
    const expiry = Number(match?.[1]);
    expect(expiry).toBeGreaterThanOrEqual(joinedAt + TTL_S);
    expect(expiry).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + TTL_S);
    expect(turn?.credential).toBe(createHmac('sha1', secret).update(username).digest('base64'));

    const page = await browser.newPage();
    try {
      // The gateway's credentials: coturn allocates; Chromium has a relay candidate.
      const good = await gather(page, iceServers);
      expect(
        good.candidates.some((c) => / typ relay /.test(c)),
        JSON.stringify(good),
      ).toBe(true);
      expect(good.complete).toBe(true);
      // coturn's log: an allocation for exactly this username, and no refusal of it.
      const user = `realm <${REALM}> user <${username}>`;
      await coturn.waitForLine(logLine(`${user}: incoming packet ALLOCATE processed, success`));
      await coturn.waitForLine(logLine(`new, realm=<${REALM}>, username=<${username}>`));
      expect(coturn.output()).not.toContain(`${user}: incoming packet message processed, error`);

      // Same username, credential from another secret: coturn answers 401; no relay.
      const forged = turnCredential('not-the-secret', 'alice', expiry);
      const bad = await gather(page, [
        iceServers[0] as IceServer,
        { ...turn, ...forged, urls: turn?.urls ?? [] },
      ]);
      expect(bad.candidates.filter((c) => / typ relay /.test(c))).toEqual([]);
      expect(
        bad.errors.map((e) => e.code),
        JSON.stringify(bad),
      ).toContain(401);
      await coturn.waitForLine(logLine(`${user}: incoming packet message processed, error 401`));

      // An expired credential with the right secret is refused the same way.
      const expired = turnCredential(secret, 'alice', joinedAt - 60);
      const late = await gather(page, [{ ...expired, urls: turn?.urls ?? [] }]);
      expect(late.candidates.filter((c) => / typ relay /.test(c))).toEqual([]);
      expect(
        late.errors.map((e) => e.code),
        JSON.stringify(late),
      ).toContain(401);
      await coturn.waitForLine(
        logLine(`user <${expired.username}>: incoming packet message processed, error 401`),
      );
    } finally {
      await page.close();
    }
  });

  it('relays a data channel between two relay-only peer connections', async () => {
    const client = await TestClient.join(platform.get('gateway').url, 'turn-room-2', 'bob');
    const { iceServers } = client.frames.find((f) => f.a === 'joinR')?.d as JoinReply;
    client.close();
    const page = await browser.newPage();
    try {
      expect(await relayedDataChannel(page, iceServers ?? [])).toBe('hello through coturn');
      // Relayed for real: coturn gave bob's allocations permissions to each other's relay address.
      const username = iceServers?.find((s) => s.username !== undefined)?.username ?? '';
      await coturn.waitForLine(
        logLine(`user <${username}>: incoming packet CREATE_PERMISSION processed, success`),
      );
    } finally {
      await page.close();
    }
  });
});
