/**
 * Run the example agent: a host named by its token, answering calls through the gateways.
 *
 *   SWITCHBOARD_URL=ws://127.0.0.1:8080/api SWITCHBOARD_TOKEN=<a JWT granting host> \
 *     node examples/agent/src/main.ts [file …]
 *
 * Files named on the command line can be downloaded by their base name. SIGINT/SIGTERM: the
 * agent goes offline (callers see it at once) and exits.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { serveHost } from '@switchboard/client';
import { WeriftPeer } from '@switchboard/rpc/werift';
import { agentService } from './agent.ts';
import { Agent } from './service.ts';

const url = process.env['SWITCHBOARD_URL'];
const token = process.env['SWITCHBOARD_TOKEN'];
if (url === undefined || token === undefined) {
  console.error('set SWITCHBOARD_URL (ws(s)://gateway/api, comma-separated) and SWITCHBOARD_TOKEN');
  process.exit(78);
}
const files = new Map<string, Uint8Array>();
for (const path of process.argv.slice(2)) files.set(basename(path), await readFile(path));

const agent = await serveHost(
  url.split(','),
  { token, createPeer: (config) => new WeriftPeer(config) },
  (rpc) => rpc.add(Agent, agentService(files)),
);
console.log(`online as ${agent.host} (instance ${agent.instance})`);
agent.on('call', ({ callId, from }) => {
  console.log(`call ${callId} from ${from.userId}`);
});
agent.on('ended', ({ callId, reason }) => {
  console.log(`call ${callId} ended: ${reason}`);
});
agent.on('state', ({ state }) => {
  console.log(`link ${state}`);
});
const stop = (): void => {
  agent.close().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
