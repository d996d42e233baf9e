import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import type { BoardHooks, HookContext, QueueAdapterOptions } from '@bull-board/api/typings/app';
import { ExpressAdapter } from '@bull-board/express';
import express, { type Router } from 'express';
import type { Queue } from 'bullmq';
import type { Ledger } from '../ledger';
import type { Logger } from '../log';
import { parseAdminCredentials, requireAdminToken } from './admin-auth';

export interface AdminBoardOptions {
  /** ADMIN_TOKEN: HTTP basic password (any user) or bearer token. */
  token: string;
  queues: readonly Queue[];
  /** Where board retries are recorded as operator actions, as `paystate failed retry` records its own. */
  ledger: Ledger;
  log: Logger;
  /** @defaultValue '/admin/queues' */
  basePath?: string;
}

/**
 * Board routes that delete or rewrite jobs, queues or schedules. An emptied or obliterated `status-events`
 * queue loses events the platform was already answered 2xx for, so no button may do that by accident;
 * the on-call tools are retry (failed jobs only), promote, pause and resume.
 */
const REFUSED_ROUTES = new Set([
  'put /api/queues/:queueName/obliterate',
  'put /api/queues/:queueName/empty',
  'put /api/queues/:queueName/clean/:queueStatus',
  'put /api/queues/:queueName/:jobId/clean',
  'post /api/queues/:queueName/add',
  'patch /api/queues/:queueName/:jobId/update-data',
  'patch /api/queues/:queueName/:jobId/delay',
  'patch /api/queues/:queueName/:jobId/priority',
  'put /api/queues/:queueName/:jobId/remove-unprocessed-children',
  'put /api/queues/:queueName/concurrency',
  'put /api/queues/:queueName/rate-limit',
  'put /api/queues/:queueName/job-schedulers/:schedulerId/remove',
  'patch /api/queues/:queueName/job-schedulers/:schedulerId',
]);

const RETRY_ONE = 'put /api/queues/:queueName/:jobId/retry';
const RETRY_ALL = 'put /api/queues/:queueName/retry/:queueStatus';

const refuse = (message: string) => ({ allow: false, status: 403 as const, message });

/**
 * Only failed jobs are retried, as by `paystate failed retry`: both call BullMQ's `job.retry('failed')`,
 * which moves the job back to waiting with its attempts reset and its id (the event id) unchanged.
 */
async function checkRequest({ method, route, request }: HookContext) {
  const key = `${method} ${route}`;
  if (REFUSED_ROUTES.has(key)) return refuse('refused by paystate: this action can lose or rewrite jobs');
  if (key === RETRY_ALL && request.params.queueStatus !== 'failed')
    return refuse('only failed jobs are retried from the board');
  if (key === RETRY_ONE) {
    const job = await request.queues.get(request.params.queueName)?.getJob(request.params.jobId);
    const state = job ? await job.getState() : undefined;
    if (state !== undefined && state !== 'failed')
      return refuse(`only failed jobs are retried (this one is ${state})`);
  }
  return undefined;
}

/** bull-board at `basePath`, behind the admin token; every change it makes is logged, retries recorded. */
export function createAdminBoardRouter(options: AdminBoardOptions): Router {
  const { ledger, log } = options;
  const basePath = options.basePath ?? '/admin/queues';
  const serverAdapter = new ExpressAdapter().setBasePath(basePath);
  // Completed jobs are not retried: their events are in the ledger already.
  const adapterOptions: Partial<QueueAdapterOptions> & { allowCompletedRetries: boolean } = {
    allowCompletedRetries: false,
  };

  const hooks: BoardHooks = {
    before: checkRequest,
    after: async (context, result) => {
      const { method, route, request } = context;
      if (method === 'get') return result;
      const status = result.status ?? 200;
      const actor = parseAdminCredentials(request.headers.authorization)?.user ?? 'admin-board';
      const fields = { actor, route, params: request.params, status };
      log.info('admin board action', fields);
      const key = `${method} ${route}`;
      if (status >= 300 || (key !== RETRY_ONE && key !== RETRY_ALL)) return result;
      const retried = key === RETRY_ONE ? 1 : Number((result.body as { retried?: unknown }).retried ?? 0);
      try {
        await ledger.recordAction({
          actor,
          reason: null,
          action: 'failed.retry',
          target: key === RETRY_ONE ? String(request.params.jobId) : 'all',
          count: retried,
          dryRun: false,
          details: { via: 'admin board', queue: request.params.queueName },
        });
      } catch (error) {
        // The retry has happened; answering 500 now would invite a second one. The log line is the record.
        log.error('admin board retry not recorded', { ...fields, error: (error as Error).message });
      }
      return result;
    },
  };

  createBullBoard({
    queues: options.queues.map((queue) => new BullMQAdapter(queue, adapterOptions)),
    serverAdapter,
    options: { handlerHooks: hooks, uiConfig: { boardTitle: 'paystate queues' } },
  });
  const router = express.Router();
  router.use(basePath, requireAdminToken(options.token), serverAdapter.getRouter());
  return router;
}
