import { FAULT_API_TOKEN, runEntryPoint, stackEnv, type RunningProcess } from './fault-processes';
import { waitFor } from './wait-for';

/**
 * Process stacks for the PostgreSQL fault tests, beside test/helpers/fault-processes.ts (which starts web and
 * worker; this adds the scheduler and the environment that points a stack at a PostgreSQL ledger).
 */

export interface LedgerStackEnvOptions {
  port: number;
  redisUrl: string;
  /** `{ LEDGER_URL }` or `{ LEDGER_PATH }`. */
  ledger: { LEDGER_URL: string } | { LEDGER_PATH: string };
  /** Extra settings (reconciler ladder, platform, …). */
  extra?: Record<string, string>;
}

/** stackEnv with the ledger chosen explicitly: LEDGER_PATH is left out when the stack runs on PostgreSQL. */
export function ledgerStackEnv(options: LedgerStackEnvOptions): Record<string, string> {
  const { LEDGER_PATH: _unused, ...base } = stackEnv({
    port: options.port,
    redisUrl: options.redisUrl,
    ledgerPath: 'unused',
  });
  return { ...base, ...options.ledger, ...options.extra };
}

/** Starts `scheduler` (workers/scheduler.ts; SCHEDULER_PORT must be set) and waits for its start line. */
export async function startScheduler(
  env: Record<string, string>,
  name = 'scheduler',
): Promise<RunningProcess> {
  const scheduler = runEntryPoint(name, 'workers/scheduler.ts', env);
  try {
    await waitFor(() => {
      if (scheduler.done())
        throw new Error(`${name} exited before it started; its output:\n${scheduler.output().slice(-4000)}`);
      return scheduler.output().includes('scheduler started');
    }, 30_000);
  } catch (error) {
    scheduler.child.kill('SIGKILL');
    throw error;
  }
  return scheduler;
}

/** GET or POST on a stack's API with its bearer token; the JSON answer and status. */
export async function stackApi(
  baseUrl: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${baseUrl}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      authorization: `Bearer ${FAULT_API_TOKEN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** How many lines of a process's output contain `text`. */
export const linesWith = (running: RunningProcess, text: string): number =>
  running
    .output()
    .split('\n')
    .filter((line) => line.includes(text)).length;
