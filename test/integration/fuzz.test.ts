import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import { buildWeb, type BuiltWeb } from '../helpers/build-web';
import {
  FuzzClient,
  describeRequest,
  refusalProblem,
  runFuzz,
  type FuzzRequest,
} from '../helpers/fuzz-client';
import {
  authorizationHeader,
  changesQuery,
  nonUtf8Registration,
  paymentIdPath,
  paymentsQuery,
  registrationBody,
} from '../helpers/fuzz-api-requests';
import {
  WEBHOOK_MAX_BODY,
  malformedJson,
  mangledHeaders,
  nonUtf8,
  oversizedBody,
  signatureOfOtherBytes,
  tooManyEvents,
  truncatedBody,
  unknownKeyId,
  wrongApiVersion,
  wrongShape,
  wrongSignature,
} from '../helpers/fuzz-webhook-requests';

/**
 * Bad input, sent by the thousand to one web process (real HTTP, Redis and SQLite): every answer must be a
 * 4xx with a JSON `{ error, message }`, nothing may be queued or written, the process must stay up, and its
 * heap must not grow with the number of requests. Samples come from fast-check with a fixed seed
 * (FUZZ_SEED overrides it); a failure names the request, its seed and its path for replay.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20261127);
const FUZZ_TIMEOUT = 60_000;
/**
 * Heap growth allowed across the run after a forced GC. A run grows it by about 4 MB (fast-check's and the
 * client's own bookkeeping among it); keeping 2 KB per request would add about 28 MB.
 */
const HEAP_GROWTH_LIMIT = 24 * 1024 * 1024;
/** Without a forced GC the figures include garbage not yet collected, so the bound is generous. */
const UNCOLLECTED_GROWTH_LIMIT = 100 * 1024 * 1024;

let web: BuiltWeb;
let client: FuzzClient;
let started: number;
let heapBefore: Heap;
let heapAfter: Heap | undefined;

interface Heap {
  heapUsed: number;
  rss: number;
  collected: boolean;
}

/** Node's gc(), exposed at run time when jest was not started with --expose-gc. */
function findGc(): (() => void) | undefined {
  if (typeof global.gc === 'function') return global.gc;
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

function measureHeap(): Heap {
  const gc = findGc();
  gc?.();
  gc?.();
  const { heapUsed, rss } = process.memoryUsage();
  return { heapUsed, rss, collected: gc !== undefined };
}

async function queuedJobs(): Promise<number> {
  const counts = await web.queue.getJobCounts(
    'waiting',
    'active',
    'completed',
    'failed',
    'delayed',
    'prioritized',
    'paused',
    'waiting-children',
  );
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

/** Sends `requests` samples, then checks that none of them queued a job or wrote a change. */
async function fuzz(request: fc.Arbitrary<FuzzRequest>, requests: number, seedOffset: number) {
  await runFuzz(client, request, { requests, seed: SEED + seedOffset });
  expect(await queuedJobs()).toBe(0);
  expect(await web.ledger.listChanges(0, 10)).toEqual([]);
}

beforeAll(async () => {
  started = Date.now();
  web = await buildWeb({
    maxBodyBytes: WEBHOOK_MAX_BODY,
    // Far above the run's failures, so the 429 throttle does not hide the answers under test.
    failureLimit: Number.MAX_SAFE_INTEGER,
  });
  client = new FuzzClient(web.url, { sockets: 16 });
  // Warm up (JIT, pools, lazily built schemas) before the heap baseline.
  await runFuzz(client, fc.oneof(malformedJson, wrongShape, registrationBody, paymentIdPath), {
    requests: 256,
    seed: SEED - 1,
  });
  heapBefore = measureHeap();
});

afterAll(async () => {
  client?.close();
  await web?.close();
  if (!client) return;
  const perCategory = [...client.counts].map(([category, n]) => `${category} ${n}`).join(', ');
  const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
  const heap = heapAfter
    ? `heap ${mb(heapBefore.heapUsed)} → ${mb(heapAfter.heapUsed)}${heapAfter.collected ? ' after gc()' : ', no gc()'}`
    : 'heap not measured';
  process.stdout.write(
    `fuzz: ${client.total} requests in ${((Date.now() - started) / 1000).toFixed(1)} s (seed ${SEED}, ${heap}): ${perCategory}\n`,
  );
  if (process.env.FUZZ_VERBOSE) {
    for (const [answer, n] of [...client.answers].sort()) process.stdout.write(`  ${answer}: ${n}\n`);
  }
});

describe('POST /webhooks refuses bad input with a 4xx JSON error and queues nothing', () => {
  it('refuses malformed JSON, signed', () => fuzz(malformedJson, 960, 1), FUZZ_TIMEOUT);
  it('refuses truncated bodies', () => fuzz(truncatedBody, 960, 2), FUZZ_TIMEOUT);
  it('refuses bodies over the size limit', () => fuzz(oversizedBody, 480, 3), FUZZ_TIMEOUT);
  it('refuses wrong signatures', () => fuzz(wrongSignature, 960, 4), FUZZ_TIMEOUT);
  it('refuses signatures made over other bytes', () => fuzz(signatureOfOtherBytes, 960, 5), FUZZ_TIMEOUT);
  it('refuses unknown key ids', () => fuzz(unknownKeyId, 960, 6), FUZZ_TIMEOUT);
  it('refuses missing, repeated and mangled headers', () => fuzz(mangledHeaders, 1280, 7), FUZZ_TIMEOUT);
  it('refuses a wrong apiVersion, signed', () => fuzz(wrongApiVersion, 640, 8), FUZZ_TIMEOUT);
  it('refuses bodies that are not UTF-8, signed', () => fuzz(nonUtf8, 640, 9), FUZZ_TIMEOUT);
  it('refuses JSON of the wrong shape, signed', () => fuzz(wrongShape, 1280, 10), FUZZ_TIMEOUT);
  it('refuses arrays of more than 100 events, signed', () => fuzz(tooManyEvents, 320, 11), FUZZ_TIMEOUT);
});

describe('the fulfilment API refuses bad input with a 4xx JSON error and writes nothing', () => {
  it('refuses invalid registration bodies', () => fuzz(registrationBody, 960, 21), FUZZ_TIMEOUT);
  it('refuses invalid GET /v1/payments queries', () => fuzz(paymentsQuery, 640, 22), FUZZ_TIMEOUT);
  it('refuses invalid GET /v1/changes queries', () => fuzz(changesQuery, 640, 23), FUZZ_TIMEOUT);
  it('refuses or does not find odd payment ids', () => fuzz(paymentIdPath, 960, 24), FUZZ_TIMEOUT);
  it('refuses missing and mangled Authorization', () => fuzz(authorizationHeader, 960, 25), FUZZ_TIMEOUT);
});

describe('after the barrage', () => {
  it('is still up and ready, and its heap stayed bounded', async () => {
    const health = await fetch(`${web.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${web.url}/readyz`)).status).toBe(200);
    expect(await queuedJobs()).toBe(0);

    heapAfter = measureHeap();
    const heapGrowth = heapAfter.heapUsed - heapBefore.heapUsed;
    if (heapAfter.collected) {
      // gc() was available (exposed at run time): heapUsed is what is still reachable.
      expect(heapGrowth).toBeLessThan(HEAP_GROWTH_LIMIT);
    } else {
      // No gc(): the figures include uncollected garbage, so only a generous bound on both is meaningful.
      expect(heapGrowth).toBeLessThan(UNCOLLECTED_GROWTH_LIMIT);
      expect(heapAfter.rss - heapBefore.rss).toBeLessThan(UNCOLLECTED_GROWTH_LIMIT);
    }
  });
});

describe('requests refused before the schema', () => {
  // Found by this fuzz test: express.json decodes UTF-8 leniently, so such a registration was stored with U+FFFD.
  it('refuses a registration body that is not UTF-8', async () => {
    await runFuzz(client, nonUtf8Registration, { requests: 32, seed: SEED + 31 });
    expect(await web.ledger.listChanges(0, 10)).toEqual([]);
  });

  // Found by this fuzz test: requests Node's HTTP parser refuses before the app runs (a header block over 16 KiB,
  // raw non-ASCII bytes in the request target) got Node's bare 431/400 without a body.
  it('answers requests the HTTP parser refuses with a JSON error', async () => {
    const probe = new FuzzClient(web.url, { sockets: 1 });
    try {
      const requests: FuzzRequest[] = [
        {
          category: 'protocol header block over 16 KiB',
          method: 'POST',
          path: '/webhooks',
          headers: [['x-gcs-signature', 'A'.repeat(20_000)]],
          body: Buffer.from('{}'),
          expect: [431],
        },
        {
          category: 'protocol raw non-ASCII target',
          method: 'GET',
          path: '/v1/payments/\u00e9',
          headers: [],
          expect: [400],
        },
      ];
      const problems: string[] = [];
      for (const request of requests) {
        const problem = refusalProblem(request, await probe.send(request));
        if (problem) problems.push(`${problem}: ${describeRequest(request)}`);
      }
      expect(problems).toEqual([]);
    } finally {
      probe.close();
    }
  });
});
