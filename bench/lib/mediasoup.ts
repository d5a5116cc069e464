/**
 * mediasoup for the benchmarks, loaded from the media service's own dependency: the bare
 * baseline of `bench/media.ts` then runs exactly the mediasoup (and worker binary) that the
 * media service runs, and the root package needs no second copy in its dependencies.
 */
import { createRequire } from 'node:module';
import type * as Mediasoup from '../../services/media/node_modules/mediasoup/node/lib/index.js';

export type { types } from '../../services/media/node_modules/mediasoup/node/lib/index.js';

const require = createRequire(new URL('../../services/media/package.json', import.meta.url));

export const mediasoup = require('mediasoup') as typeof Mediasoup;
