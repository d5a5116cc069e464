/**
 * Where a receiving plain transport may send RTP: only to addresses inside
 * MEDIA_PLAIN_ALLOWED_CIDRS (by default loopback alone). A recorder names its own address in
 * connectPlainTransport; without this list a member could make the SFU send its room's media
 * to any host on the internet or the pod network.
 */
import { BlockList, isIP } from 'node:net';
import { ConfigError } from '@switchboard/service';

export class PlainTargets {
  readonly #allowed: BlockList;
  readonly cidrs: readonly string[];

  private constructor(allowed: BlockList, cidrs: readonly string[]) {
    this.#allowed = allowed;
    this.cidrs = cidrs;
  }

  /** Parse a comma-separated CIDR list; ConfigError naming MEDIA_PLAIN_ALLOWED_CIDRS if bad. */
  static parse(list: string): PlainTargets {
    const allowed = new BlockList();
    const cidrs = list
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== '');
    for (const cidr of cidrs) {
      const [address = '', bits = ''] = cidr.split('/');
      const family = isIP(address);
      const prefix = Number(bits);
      const max = family === 6 ? 128 : 32;
      if (family === 0 || !/^\d{1,3}$/.test(bits) || prefix > max) {
        throw new ConfigError([
          { variable: 'MEDIA_PLAIN_ALLOWED_CIDRS', message: `"${cidr}" is not an address/prefix` },
        ]);
      }
      allowed.addSubnet(address, prefix, family === 6 ? 'ipv6' : 'ipv4');
    }
    return new PlainTargets(allowed, cidrs);
  }

  /** Whether RTP may be sent to `ip`. */
  allows(ip: string): boolean {
    const family = isIP(ip);
    if (family === 0) return false;
    return this.#allowed.check(ip, family === 6 ? 'ipv6' : 'ipv4');
  }
}
