import { describe, expect, it } from 'vitest';
import { TokenClaims, hostGranted, roomGranted, tokenClaims } from '@switchboard/protocol';

describe('roomGranted', () => {
  it('grants exact room ids only', () => {
    expect(roomGranted(['room-1'], 'room-1')).toBe(true);
    expect(roomGranted(['room-1'], 'room-10')).toBe(false);
    expect(roomGranted(['room-1'], 'room-')).toBe(false);
    expect(roomGranted(['room-1'], 'Room-1')).toBe(false);
    expect(roomGranted(['a', 'b', 'room-1'], 'room-1')).toBe(true);
  });

  it('grants every room starting with a prefix that ends with *', () => {
    const rooms = ['team-a:*'];
    expect(roomGranted(rooms, 'team-a:standup')).toBe(true);
    expect(roomGranted(rooms, 'team-a:')).toBe(true);
    expect(roomGranted(rooms, 'team-a')).toBe(false);
    expect(roomGranted(rooms, 'team-b:standup')).toBe(false);
    expect(roomGranted(rooms, 'xteam-a:standup')).toBe(false);
  });

  it('grants every room for "*"', () => {
    expect(roomGranted(['*'], 'anything')).toBe(true);
    expect(roomGranted(['nothing', '*'], 'a')).toBe(true);
  });

  it('treats a * that is not last literally', () => {
    expect(roomGranted(['a*b'], 'axb')).toBe(false);
    expect(roomGranted(['a*b'], 'a*b')).toBe(true);
    expect(roomGranted(['*a'], 'ba')).toBe(false);
  });

  it('grants nothing for no grants or an empty room id', () => {
    expect(roomGranted([], 'room-1')).toBe(false);
    expect(roomGranted(['*'], '')).toBe(false);
    expect(roomGranted([''], '')).toBe(false);
  });
});

describe('TokenClaims', () => {
  it('accepts sub and rooms, an optional name and any extra claims', () => {
    expect(tokenClaims.check({ sub: 'u', rooms: ['r'] })).toBe(true);
    expect(tokenClaims.check({ sub: 'u', rooms: ['r', 'p*', '*'], name: 'Ann', x: 1 })).toBe(true);
    expect(tokenClaims.check({ sub: 'u'.repeat(128), rooms: ['r'.repeat(129)] })).toBe(true);
    expect(tokenClaims.schema).toBe(TokenClaims);
  });

  it('rejects a missing, empty or oversized sub', () => {
    expect(tokenClaims.check({ rooms: ['r'] })).toBe(false);
    expect(tokenClaims.check({ sub: '', rooms: ['r'] })).toBe(false);
    expect(tokenClaims.check({ sub: 'u'.repeat(129), rooms: ['r'] })).toBe(false);
    expect(tokenClaims.check({ sub: 1, rooms: ['r'] })).toBe(false);
    const parsed = tokenClaims.parse({ rooms: ['r'] });
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.issues.some((i) => i.missing && i.path === '/sub')).toBe(true);
  });

  it('takes rooms as optional (hosts and callers need none); rejects bad or oversized ones', () => {
    expect(tokenClaims.check({ sub: 'u' })).toBe(true);
    expect(tokenClaims.check({ sub: 'u', rooms: [] })).toBe(true);
    expect(tokenClaims.check({ sub: 'u', rooms: 'r' })).toBe(false);
    expect(tokenClaims.check({ sub: 'u', rooms: [''] })).toBe(false);
    expect(tokenClaims.check({ sub: 'u', rooms: ['r'.repeat(130)] })).toBe(false);
    expect(tokenClaims.check({ sub: 'u', rooms: [1] })).toBe(false);
    const many = Array.from({ length: 256 }, (_, i) => `r${i}`);
    expect(tokenClaims.check({ sub: 'u', rooms: many })).toBe(true);
    expect(tokenClaims.check({ sub: 'u', rooms: [...many, 'one-more'] })).toBe(false);
  });

  it('takes a host name and call grants, single subject tokens only', () => {
    expect(tokenClaims.check({ sub: 'u', host: 'cam-1', call: ['cam-*', 'robot_2', '*'] })).toBe(
      true,
    );
    for (const host of ['', 'a.b', 'a*', 'a b', 'h'.repeat(65), '>']) {
      expect(tokenClaims.check({ sub: 'u', host }), host).toBe(false);
    }
    for (const grant of ['', 'a.*', '*a', 'a**', 'a>', 'a b']) {
      expect(tokenClaims.check({ sub: 'u', call: [grant] }), grant).toBe(false);
    }
    expect(hostGranted(['cam-*'], 'cam-7')).toBe(true);
    expect(hostGranted(['cam-*'], 'robot')).toBe(false);
    expect(hostGranted(['*'], 'anything')).toBe(true);
    expect(hostGranted(['cam-1'], 'cam-10')).toBe(false);
    expect(hostGranted([], 'cam-1')).toBe(false);
  });

  it('rejects a name that is too long or not a string', () => {
    expect(tokenClaims.check({ sub: 'u', rooms: ['r'], name: 'n'.repeat(128) })).toBe(true);
    expect(tokenClaims.check({ sub: 'u', rooms: ['r'], name: 'n'.repeat(129) })).toBe(false);
    expect(tokenClaims.check({ sub: 'u', rooms: ['r'], name: null })).toBe(false);
  });
});
