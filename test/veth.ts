/**
 * A link of a test's own: a network namespace and a veth pair, one end (`hostIp`) in this
 * namespace and the other (`nsIp`) in the new one, each with an address of a /30 of its own
 * per run (10.231-238.x.y), so runs in parallel do not collide. Needs root; `remove()` takes
 * the namespace and the pair with it. Nothing of it reaches a real interface.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export const isRoot = process.getuid?.() === 0;

function sh(args: string[]): void {
  execFileSync(args[0] ?? '', args.slice(1), { stdio: 'pipe' });
}

export class Veth {
  /** The namespace, for `ip netns exec`. */
  readonly ns: string;
  readonly hostDev: string;
  readonly nsDev: string;
  readonly hostIp: string;
  readonly nsIp: string;

  private constructor() {
    const tag = randomBytes(3).toString('hex');
    this.ns = `sbns${tag}`;
    this.hostDev = `sbh${tag}`;
    this.nsDev = `sbn${tag}`;
    const subnet = `10.${String(231 + (parseInt(tag.slice(0, 2), 16) % 8))}.${String(parseInt(tag.slice(2, 4), 16))}`;
    this.hostIp = `${subnet}.1`;
    this.nsIp = `${subnet}.2`;
  }

  /** Make the namespace and the pair, both ends up with their addresses. */
  static create(): Veth {
    const v = new Veth();
    sh(['ip', 'netns', 'add', v.ns]);
    try {
      sh(['ip', 'link', 'add', v.hostDev, 'type', 'veth', 'peer', 'name', v.nsDev]);
      sh(['ip', 'link', 'set', v.nsDev, 'netns', v.ns]);
      sh(['ip', 'addr', 'add', `${v.hostIp}/30`, 'dev', v.hostDev]);
      sh(['ip', 'link', 'set', v.hostDev, 'up']);
      v.inNs(['ip', 'addr', 'add', `${v.nsIp}/30`, 'dev', v.nsDev]);
      v.inNs(['ip', 'link', 'set', v.nsDev, 'up']);
      v.inNs(['ip', 'link', 'set', 'lo', 'up']);
    } catch (err) {
      v.remove();
      throw err;
    }
    return v;
  }

  /** Run a command in this namespace. */
  inNs(args: string[]): void {
    sh(['ip', 'netns', 'exec', this.ns, ...args]);
  }

  /** Run a command here (`host`) or in the namespace (`ns`), naming that side's device. */
  onEachEnd(f: (dev: string, run: (args: string[]) => void) => void): void {
    f(this.hostDev, sh);
    f(this.nsDev, (args) => {
      this.inNs(args);
    });
  }

  /** The prefix that runs a program in the namespace (`ip netns exec <ns>`). */
  get exec(): string[] {
    return ['ip', 'netns', 'exec', this.ns];
  }

  remove(): void {
    try {
      sh(['ip', 'netns', 'del', this.ns]); // takes the veth pair with it
    } catch {
      // Already gone.
    }
  }
}
