/**
 * Operator commands for rooms, through the server API (services/api) with an API key — the
 * same HTTP API a team's backend calls:
 *
 *   node services/rooms/src/admin.ts rooms [prefix*]                  rooms (all, or a prefix's)
 *   node services/rooms/src/admin.ts room <roomId>                     a room and its members
 *   node services/rooms/src/admin.ts create <roomId> [--capacity n] [--empty-timeout s|none]
 *                                         [--metadata text]            create a room
 *   node services/rooms/src/admin.ts capacity <roomId> <n|default>     set a room's capacity
 *                                         (creating the room when it does not exist)
 *   node services/rooms/src/admin.ts delete <roomId>                   delete a room (members removed)
 *   node services/rooms/src/admin.ts kick <roomId> <socketId> [reason] remove a member
 *   node services/rooms/src/admin.ts call <roomId> <method> [json]     a server-to-client request
 *                                         to every member (getClientStats, requestMute…)
 *
 * SWITCHBOARD_API_URL, SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET (or
 * SWITCHBOARD_API_SECRET_FILE): the API and the key. Prints JSON; exits 0, 1 when the request
 * failed, 2 on bad usage, 78 on a bad environment.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ApiClient, type ApiClient as Client } from '@switchboard/client/server';
import {
  ApiClientConfig,
  API_SECRET_MIN_LENGTH,
  DEFAULT_CALL_TIMEOUT_MS,
  RoomGrant,
  RoomId,
  SocketId,
  isProtocolError,
  isServerRequest,
  serverRequestData,
  validator,
  type Participant,
  type Room,
} from '@switchboard/protocol';
import { ConfigError, EXIT_CONFIG, loadConfig } from '@switchboard/service';

const roomId = validator(RoomId);
const socketId = validator(SocketId);
const roomGrant = validator(RoomGrant);
const USAGE = `usage: admin.ts rooms [prefix*]
       admin.ts room <roomId>
       admin.ts create <roomId> [--capacity n] [--empty-timeout s|none] [--metadata text]
       admin.ts capacity <roomId> <n|default>
       admin.ts delete <roomId>
       admin.ts kick <roomId> <socketId> [reason]
       admin.ts call <roomId> <method> [json]`;

class Usage extends Error {}

function usage(message: string): never {
  throw new Usage(message);
}

function room(id: string | undefined): string {
  if (id === undefined || !roomId.check(id)) usage('a valid room id is needed');
  return id;
}

/** Every page of a paged listing. */
async function all<T, N>(
  page: (after: N | undefined) => Promise<{ items: T[]; next: N | undefined }>,
): Promise<T[]> {
  const out: T[] = [];
  let after: N | undefined;
  do {
    const p = await page(after);
    out.push(...p.items);
    after = p.next;
  } while (after !== undefined);
  return out;
}

/** The command's work: its output (printed as JSON). Throws Usage on bad arguments. */
async function run(api: Client, argv: string[]): Promise<unknown> {
  const [command, ...args] = argv;
  switch (command) {
    case 'rooms': {
      const only = args[0] ?? '*';
      if (args.length > 1 || !roomGrant.check(only)) usage('rooms: one room id or prefix*');
      const scoped: Client = api.withGrants({ roomList: true, rooms: [only] });
      return await all<Room, string>(async (after) => {
        const r = await scoped.listRooms({
          limit: 1000,
          ...(after === undefined ? {} : { after }),
        });
        return { items: r.rooms, next: r.next };
      });
    }
    case 'room': {
      const id = room(args[0]);
      const info = await api.getRoom({ roomId: id });
      const participants = await all<Participant, string>(async (after) => {
        const r = await api.listParticipants({
          roomId: id,
          limit: 1000,
          ...(after === undefined ? {} : { after }),
        });
        return { items: r.participants, next: r.next };
      });
      return { room: info, participants };
    }
    case 'create': {
      const id = room(args[0]);
      const { values, positionals } = parseArgs({
        args: args.slice(1),
        options: {
          capacity: { type: 'string' },
          'empty-timeout': { type: 'string' },
          metadata: { type: 'string' },
        },
        allowPositionals: true,
      });
      if (positionals.length > 0) usage(`create: unexpected ${positionals.join(' ')}`);
      const capacity = values.capacity;
      if (capacity !== undefined && !/^[1-9][0-9]{0,5}$/.test(capacity)) {
        usage('create: --capacity is a positive number');
      }
      const timeout = values['empty-timeout'];
      if (timeout !== undefined && timeout !== 'none' && !/^[0-9]{1,7}$/.test(timeout)) {
        usage('create: --empty-timeout is seconds, or none');
      }
      return await api.createRoom({
        roomId: id,
        ...(capacity === undefined ? {} : { capacity: Number(capacity) }),
        ...(timeout === undefined
          ? {}
          : { emptyTimeoutS: timeout === 'none' ? null : Number(timeout) }),
        ...(values.metadata === undefined ? {} : { metadata: values.metadata }),
      });
    }
    case 'capacity': {
      const id = room(args[0]);
      const value = args[1];
      let capacity: number | null = null;
      if (value !== undefined && /^[1-9][0-9]{0,5}$/.test(value)) capacity = Number(value);
      else if (value !== 'default') usage('capacity: a positive number, or "default"');
      try {
        return await api.updateRoom({ roomId: id, capacity });
      } catch (err) {
        if (!isProtocolError(err) || err.errorName !== 'ROOM_NOT_FOUND') throw err;
        // As configureRoom did: a room that does not exist yet is made with the capacity, and
        // kept while empty (no empty timeout) until it is deleted.
        return (await api.createRoom({ roomId: id, capacity, emptyTimeoutS: null })).room;
      }
    }
    case 'delete':
      return await api.deleteRoom({ roomId: room(args[0]) });
    case 'kick': {
      const id = room(args[0]);
      const socket = args[1];
      if (socket === undefined || !socketId.check(socket)) usage('kick: a valid socketId');
      const reason = args.slice(2).join(' ');
      if (reason.length > 100) usage('kick: the reason is at most 100 characters');
      await api.removeParticipant({
        roomId: id,
        socketId: socket,
        ...(reason === '' ? {} : { reason }),
      });
      return { roomId: id, socketId: socket, removed: true };
    }
    case 'call': {
      const id = room(args[0]);
      const [, method, json = '{}'] = args;
      if (method === undefined || !isServerRequest(method)) usage('call: a server request method');
      let data: unknown;
      try {
        data = JSON.parse(json);
      } catch {
        usage('call: the data must be JSON');
      }
      if (!serverRequestData[method].check(data)) usage(`call: not valid data for ${method}`);
      const { results } = await api.callRoom({
        roomId: id,
        method,
        data,
        timeoutMs: DEFAULT_CALL_TIMEOUT_MS,
      });
      return results;
    }
    default:
      return usage(`unknown command ${command ?? '(none)'}`);
  }
}

async function main(argv: string[]): Promise<number> {
  let api: Client;
  try {
    const config = loadConfig(ApiClientConfig);
    const fromFile = config.SWITCHBOARD_API_SECRET_FILE;
    if (fromFile !== undefined && config.SWITCHBOARD_API_SECRET !== undefined) {
      throw new ConfigError([
        {
          variable: 'SWITCHBOARD_API_SECRET_FILE',
          message: 'give SWITCHBOARD_API_SECRET or SWITCHBOARD_API_SECRET_FILE, not both',
        },
      ]);
    }
    let secret = config.SWITCHBOARD_API_SECRET;
    if (fromFile !== undefined) {
      try {
        secret = readFileSync(fromFile, 'utf8').trim();
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        throw new ConfigError([
          {
            variable: 'SWITCHBOARD_API_SECRET_FILE',
            message: `cannot read ${fromFile} (${typeof code === 'string' ? code : 'error'})`,
          },
        ]);
      }
    }
    if (secret === undefined || secret.length < API_SECRET_MIN_LENGTH) {
      throw new ConfigError([
        {
          variable: 'SWITCHBOARD_API_SECRET',
          message: `is required (or SWITCHBOARD_API_SECRET_FILE): the key's secret, at least ${API_SECRET_MIN_LENGTH} characters`,
        },
      ]);
    }
    api = new ApiClient({
      url: config.SWITCHBOARD_API_URL,
      keyId: config.SWITCHBOARD_API_KEY,
      secret,
      sub: 'rooms-admin-command',
      timeoutMs: config.SWITCHBOARD_API_TIMEOUT_MS,
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return EXIT_CONFIG;
  }
  try {
    const out = await run(api, argv);
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof Usage) {
      process.stderr.write(`${err.message}\n${USAGE}\n`);
      return 2;
    }
    process.stderr.write(
      `${isProtocolError(err) ? `${err.errorName}: ${err.message}` : String(err)}\n`,
    );
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
