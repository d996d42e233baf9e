import http from 'node:http';
import fc from 'fast-check';

/** One hostile request; `expect` lists the statuses a correct server may answer it with. */
export interface FuzzRequest {
  category: string;
  method: string;
  /** The request target exactly as written on the request line. */
  path: string;
  /** Sent in order; a name given twice (in any case) goes out as two header lines. */
  headers: ReadonlyArray<readonly [string, string]>;
  body?: Buffer;
  /** Send the body with `Transfer-Encoding: chunked` instead of a `Content-Length`. */
  chunked?: boolean;
  expect: readonly number[];
  /** When given, the JSON body's `error` must be one of these codes. */
  errors?: readonly string[];
}

export interface FuzzAnswer {
  status: number;
  contentType: string | undefined;
  body: string;
}

export interface FuzzClientOptions {
  /** Sockets kept open to the server, so also the number of requests in flight. @defaultValue 16 */
  sockets?: number;
  /** An unanswered request fails after this long. @defaultValue 10000 */
  timeoutMs?: number;
}

/** Raw HTTP over a bounded keep-alive pool, so header lines and bytes go out exactly as generated. */
export class FuzzClient {
  /** Requests sent per category. */
  readonly counts = new Map<string, number>();
  /** Answers per category, status and error code: shows that a category reaches the checks it aims at. */
  readonly answers = new Map<string, number>();
  readonly sockets: number;
  private readonly agent: http.Agent;
  private readonly target: URL;
  private readonly timeoutMs: number;

  constructor(baseUrl: string, options: FuzzClientOptions = {}) {
    this.target = new URL(baseUrl);
    this.sockets = options.sockets ?? 16;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: this.sockets });
  }

  get total(): number {
    return [...this.counts.values()].reduce((sum, n) => sum + n, 0);
  }

  send(request: FuzzRequest): Promise<FuzzAnswer> {
    this.counts.set(request.category, (this.counts.get(request.category) ?? 0) + 1);
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: this.target.hostname,
        port: this.target.port,
        method: request.method,
        path: request.path,
        agent: this.agent,
      });
      for (const [name, values] of groupHeaders(request.headers)) {
        req.setHeader(name, values.length === 1 ? values[0]! : values);
      }
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const answer = {
            status: res.statusCode ?? 0,
            contentType: res.headers['content-type'],
            body: Buffer.concat(chunks).toString('utf8'),
          };
          const key = `${request.category} → ${answer.status} ${errorCodeOf(answer.body)}`;
          this.answers.set(key, (this.answers.get(key) ?? 0) + 1);
          resolve(answer);
        });
      });
      const body = request.body;
      if (body === undefined) {
        req.end();
      } else if (request.chunked) {
        const half = body.length >> 1;
        req.write(body.subarray(0, half));
        req.end(body.subarray(half));
      } else {
        req.setHeader('content-length', body.length);
        req.end(body);
      }
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function errorCodeOf(body: string): string {
  try {
    return String((JSON.parse(body) as { error?: unknown }).error);
  } catch {
    return '(not JSON)';
  }
}

/** Header lines grouped by lower-cased name, in order: what the server joins (or keeps the first of). */
export function groupHeaders(headers: FuzzRequest['headers']): Map<string, string[]> {
  const grouped = new Map<string, string[]>();
  for (const [name, value] of headers) {
    const key = name.toLowerCase();
    grouped.set(key, [...(grouped.get(key) ?? []), value]);
  }
  return grouped;
}

/**
 * The value Node's HTTP server hands the app for a header: each line trimmed of spaces and tabs, repeated
 * lines joined with ", " — except for `first-wins` headers such as Authorization, where Node keeps the first.
 */
export function receivedHeader(
  headers: FuzzRequest['headers'],
  name: string,
  repeated: 'join' | 'first-wins' = 'join',
): string | undefined {
  const values = groupHeaders(headers)
    .get(name)
    ?.map((value) => value.replace(/^[ \t]+|[ \t]+$/g, ''));
  if (values === undefined) return undefined;
  return repeated === 'join' ? values.join(', ') : values[0];
}

/** Why an answer is not a proper refusal of `request`, or undefined when it is one. */
export function refusalProblem(request: FuzzRequest, answer: FuzzAnswer): string | undefined {
  if (!request.expect.includes(answer.status)) {
    return `answered ${answer.status}, expected ${request.expect.join(' or ')}`;
  }
  if (!/^application\/json(;|$)/.test(answer.contentType ?? '')) {
    return `answered content-type ${answer.contentType ?? '(none)'}, expected application/json`;
  }
  let json: { error?: unknown; message?: unknown };
  try {
    json = JSON.parse(answer.body) as typeof json;
  } catch {
    return 'answered a body that is not JSON';
  }
  if (typeof json?.error !== 'string' || json.error === '') return 'answered JSON without an error code';
  if (typeof json.message !== 'string' || json.message === '') return 'answered JSON without a message';
  if (request.errors && !request.errors.includes(json.error)) {
    return `answered error ${json.error}, expected ${request.errors.join(' or ')}`;
  }
  return undefined;
}

const preview = (text: string, max = 160) =>
  JSON.stringify(text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text);

export function describeRequest(request: FuzzRequest): string {
  const headers = request.headers.map(([name, value]) => `${name}: ${preview(value, 80)}`).join('; ');
  const body =
    request.body === undefined
      ? 'no body'
      : `${request.body.length} bytes${request.chunked ? ' chunked' : ''} ${preview(request.body.toString('latin1'))}`;
  return `[${request.category}] ${request.method} ${preview(request.path, 200)} {${headers}} ${body}`;
}

export interface RunFuzzOptions {
  /** Requests to send; rounded up to whole batches of `client.sockets`. */
  requests: number;
  seed: number;
}

/**
 * Sends `requests` samples of `request` in batches as wide as the client's socket pool and fails on the first
 * batch holding a request that was not refused properly. Fixed seed: a failure names its seed and path, so
 * `fc.assert(…, { seed, path })` replays exactly that batch. No shrinking: a batch is already one small case.
 */
export async function runFuzz(
  client: FuzzClient,
  request: fc.Arbitrary<FuzzRequest>,
  options: RunFuzzOptions,
): Promise<void> {
  const width = client.sockets;
  await fc.assert(
    fc.asyncProperty(fc.array(request, { minLength: width, maxLength: width }), async (batch) => {
      const answers = await Promise.all(
        batch.map((one) =>
          client
            .send(one)
            .catch((error: Error) => ({ status: 0, contentType: undefined, body: error.message })),
        ),
      );
      const problems = batch.flatMap((one, i) => {
        const problem = refusalProblem(one, answers[i]!);
        return problem ? [`${problem}: ${preview(answers[i]!.body, 200)}\n  ${describeRequest(one)}`] : [];
      });
      if (problems.length > 0) throw new Error(problems.slice(0, 3).join('\n'));
    }),
    {
      seed: options.seed,
      numRuns: Math.ceil(options.requests / width),
      endOnFailure: true,
      // Name the failing requests and how to replay them, not the whole batch's bytes.
      reporter: (run) => {
        if (!run.failed) return;
        const replay = `{ seed: ${run.seed}, path: ${JSON.stringify(run.counterexamplePath)} }`;
        throw new Error(
          `${(run.errorInstance as Error)?.message ?? String(run.errorInstance)}\n  replay with ${replay}`,
        );
      },
    },
  );
}
