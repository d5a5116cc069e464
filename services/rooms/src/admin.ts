/**
 * Operator commands for rooms, over the bus (the same RPCs any tool can call on NATS):
 *
 *   node services/rooms/src/admin.ts room <roomId>                  a room: capacity, members
 *   node services/rooms/src/admin.ts capacity <roomId> <n|default>  set a room's capacity
 *
 * NATS_URL, NATS_SUBJECT_PREFIX and NATS_REQUEST_TIMEOUT_MS as for the services. Prints
 * JSON; exits 0, 1 when the request failed, 2 on bad usage, 78 on a bad environment.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { Bus } from '@switchboard/bus';
import { BusClientConfig, RoomId, Rooms, isProtocolError, validator } from '@switchboard/protocol';
import { ConfigError, EXIT_CONFIG, loadConfig } from '@switchboard/service';

const roomId = validator(RoomId);
const USAGE = `usage: admin.ts room <roomId>
       admin.ts capacity <roomId> <n|default>`;

function usage(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

async function main(argv: string[]): Promise<number> {
  let config: BusClientConfig;
  try {
    config = loadConfig(BusClientConfig);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return EXIT_CONFIG;
  }
  const [command, id, value] = argv;
  if (id === undefined || !roomId.check(id)) usage('a valid room id is needed');
  let capacity: number | null = null;
  if (command === 'capacity') {
    if (value === 'default') capacity = null;
    else if (value !== undefined && /^[1-9][0-9]{0,5}$/.test(value)) capacity = Number(value);
    else usage('capacity: a positive number, or "default"');
  } else if (command !== 'room') {
    usage(`unknown command ${command ?? '(none)'}`);
  }

  const bus = new Bus({
    servers: config.NATS_URL,
    prefix: config.NATS_SUBJECT_PREFIX,
    service: 'rooms',
    instanceId: `admin-${randomBytes(3).toString('hex')}`,
    log: pino({ level: 'warn' }, process.stderr),
    requestTimeoutMs: config.NATS_REQUEST_TIMEOUT_MS,
  });
  try {
    await bus.whenConnected(AbortSignal.timeout(config.NATS_REQUEST_TIMEOUT_MS));
    const info =
      command === 'capacity'
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
