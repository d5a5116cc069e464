/**
 * Operator commands for rooms, over the bus (the same RPCs any tool can call on NATS):
 *
 *   node services/rooms/src/admin.ts room <roomId>                  a room: capacity, members
 *   node services/rooms/src/admin.ts capacity <roomId> <n|default>  set a room's capacity
 *   node services/rooms/src/admin.ts call <roomId> <method> [json]  a server-to-client request
 *                                         to every member (getClientStats, requestMute…)
 *
 * NATS_URL, NATS_SUBJECT_PREFIX, NATS_REQUEST_TIMEOUT_MS and the NATS credentials (NATS_USER…)
 * as for the services, of the operator's identity (`admin`). Prints
 * JSON; exits 0, 1 when the request failed, 2 on bad usage, 78 on a bad environment.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { Bus, callRoom, type BusAuth } from '@switchboard/bus';
import {
  BusClientConfig,
  RoomId,
  Rooms,
  isProtocolError,
  isServerRequest,
  serverRequestData,
  validator,
  type ServerRequest,
} from '@switchboard/protocol';
import { ConfigError, EXIT_CONFIG, loadConfig, natsAuth } from '@switchboard/service';

const roomId = validator(RoomId);
const USAGE = `usage: admin.ts room <roomId>
       admin.ts capacity <roomId> <n|default>
       admin.ts call <roomId> <method> [json]`;

function usage(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

async function main(argv: string[]): Promise<number> {
  let config: BusClientConfig;
  let auth: BusAuth;
  try {
    config = loadConfig(BusClientConfig);
    auth = natsAuth(config, 'admin');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return EXIT_CONFIG;
  }
  const [command, id, value] = argv;
  if (id === undefined || !roomId.check(id)) usage('a valid room id is needed');
  let capacity: number | null = null;
  let call: { method: ServerRequest; data: unknown } | undefined;
  if (command === 'call') {
    const [, , method, json = '{}'] = argv;
    if (method === undefined || !isServerRequest(method)) usage('call: a server request method');
    let data: unknown;
    try {
      data = JSON.parse(json);
    } catch {
      usage('call: the data must be JSON');
    }
    if (!serverRequestData[method].check(data)) usage(`call: not valid data for ${method}`);
    call = { method, data };
  } else if (command === 'capacity') {
    if (value === 'default') capacity = null;
    else if (value !== undefined && /^[1-9][0-9]{0,5}$/.test(value)) capacity = Number(value);
    else usage('capacity: a positive number, or "default"');
  } else if (command !== 'room') {
    usage(`unknown command ${command ?? '(none)'}`);
  }

  const bus = new Bus({
    servers: config.NATS_URL,
    auth,
    prefix: config.NATS_SUBJECT_PREFIX,
    service: 'rooms',
    instanceId: `admin-${randomBytes(3).toString('hex')}`,
    log: pino({ level: 'warn' }, process.stderr),
    requestTimeoutMs: config.NATS_REQUEST_TIMEOUT_MS,
  });
  try {
    await bus.whenConnected(AbortSignal.timeout(config.NATS_REQUEST_TIMEOUT_MS));
    const info =
      call !== undefined
        ? (await callRoom(bus, id, call.method, call.data as never)).map((r) =>
            r.ok
              ? r
              : {
                  ...r,
                  error: { code: r.error.code, name: r.error.errorName, message: r.error.message },
                },
          )
        : command === 'capacity'
          ? await bus.request(Rooms.configureRoom, { roomId: id, capacity })
          : await bus.request(Rooms.roomInfo, { roomId: id });
    process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(
      `${isProtocolError(err) ? `${err.errorName}: ${err.message}` : String(err)}\n`,
    );
    return 1;
  } finally {
    await bus.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
