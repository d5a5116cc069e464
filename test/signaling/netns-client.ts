/**
 * A protocol client for the network-chaos test, run inside a network namespace
 * (`ip netns exec … node netns-client.ts <wsUrl> <bearer> <roomId>`). It prints one JSON
 * line per thing that happens, for the test to read:
 *
 *   {"t":"joined","socketId":…}   {"t":"answered","to":…}   {"t":"dead"}   {"t":"closed","code":…}
 *   {"t":"reconnected","roomSize":…}
 *
 * It answers every SDP offer with an answer to its sender; it pings the gateway every
 * 500 ms and takes the socket for dead after 3000 ms without a pong (its own read
 * deadline); after a drop it sends `reconnect` with its socketId and resume token until one
 * succeeds (each success brings the next token).
 */
import WebSocket from 'ws';

const [url, bearer, roomId] = process.argv.slice(2);
if (url === undefined || bearer === undefined || roomId === undefined) {
  process.stderr.write('usage: netns-client.ts <wsUrl> <bearer> <roomId>\n');
  process.exit(2);
}

function say(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

let socketId: string | undefined;
let resumeToken: string | undefined;

function open(): void {
  const ws = new WebSocket(url ?? '', { handshakeTimeout: 2000 });
  let lastPong = Date.now();
  let pinger: NodeJS.Timeout | undefined;
  ws.on('open', () => {
    lastPong = Date.now();
    pinger = setInterval(() => {
      if (Date.now() - lastPong > 3000) {
        say({ t: 'dead' });
        ws.terminate();
        return;
      }
      ws.ping();
    }, 500);
    ws.send(
      JSON.stringify(
        socketId === undefined
          ? { a: 'join', d: { roomId, bearer, platform: 'Node' }, id: 'join' }
          : { a: 'reconnect', d: { socketId, resumeToken }, id: 'reconnect' },
      ),
    );
  });
  ws.on('pong', () => {
    lastPong = Date.now();
  });
  ws.on('message', (data: Buffer) => {
    const f = JSON.parse(data.toString('utf8')) as {
      a: string;
      s?: boolean;
      d?: {
        socketId?: string;
        resumeToken?: string;
        roomSize?: number;
        from?: { socketId: string };
        sdp?: { type: string };
      };
    };
    if (f.a === 'joinR' && f.s === true) {
      socketId = f.d?.socketId;
      resumeToken = f.d?.resumeToken;
      say({ t: 'joined', socketId });
    } else if (f.a === 'reconnectR') {
      if (f.s === true) {
        resumeToken = f.d?.resumeToken;
        say({ t: 'reconnected', roomSize: f.d?.roomSize });
      } else say({ t: 'reconnect-failed', frame: f });
    } else if (f.a === 'eventExchangeSdp' && f.d?.sdp?.type === 'offer' && f.d.from !== undefined) {
      const to = f.d.from.socketId;
      ws.send(
        JSON.stringify({
          a: 'exchangeSdp',
          d: {
            to,
            sdp: { type: 'answer', sdp: 'v=0\r\no=- 2 2 IN IP4 10.0.0.2\r\ns=-\r\nt=0 0\r\n' },
          },
        }),
      );
      say({ t: 'answered', to });
    }
  });
  ws.on('error', () => {
    // 'close' follows.
  });
  ws.on('close', (code) => {
    clearInterval(pinger);
    say({ t: 'closed', code });
    setTimeout(open, 500);
  });
}

open();
