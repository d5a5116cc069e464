/** A TCP proxy for cutting one process off from NATS while everything else stays connected. */
import { createServer, Socket, type Server } from 'node:net';
import { freePort } from '@switchboard/devstack';

/** A TCP proxy to NATS that can be cut (every connection dropped, none accepted). */
export class CuttableProxy {
  readonly port: number;
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;

  private constructor(port: number, target: { host: string; port: number }) {
    this.port = port;
    this.#target = target;
  }

  static async start(natsUrl: string): Promise<CuttableProxy> {
    const u = new URL(natsUrl.split(',')[0] ?? natsUrl);
    const p = new CuttableProxy(await freePort(), { host: u.hostname, port: Number(u.port) });
    await p.restore();
    return p;
  }

  /** Listen again (a proxy that is up already stays as it is). */
  async restore(): Promise<void> {
    if (this.#server !== undefined) return;
    const server = createServer((client) => {
      const upstream = new Socket();
      this.#sockets.add(client).add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      upstream.connect(this.#target.port, this.#target.host, () => {
        client.pipe(upstream).pipe(client);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    this.#server = server;
  }

  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    }
  }
}
