import express, { type Router } from 'express';
import { zChangesQuery } from '../../schemas';
import type { ChangeWithPayment, Ledger, ReleaseOn } from '../ledger';
import { timerWait, type ChangeSignal } from '../queue/change-signal';
import { sendError, sendInvalidRequest } from './http-error';
import { paymentJson } from './payment-json';

export interface ChangesRouteOptions {
  ledger: Ledger;
  releaseOn: ReleaseOn;
  /**
   * How often a long-poll looks for new changes (the writer is another process; one indexed read).
   * @defaultValue 25, or 250 with a `changeSignal`
   */
  pollIntervalMs?: number;
  /** Writers' announcements of new changes: a long-poll wakes at once instead of at its next poll. */
  changeSignal?: ChangeSignal;
}

/** Cursors are opaque to clients; "0" (or none) means from the start. */
export function encodeCursor(seq: number): string {
  return Buffer.from(`c${seq}`).toString('base64url');
}

export function decodeCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined || cursor === '0') return 0;
  const match = /^c(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString());
  return match ? Number(match[1]) : undefined;
}

/**
 * The change feed. SQLite has one writer at a time and a change's seq is taken inside its transaction, so
 * seq order is commit order: a reader that resumes after the last seq it saw never skips or repeats a change.
 */
export function createChangesRouter(options: ChangesRouteOptions): Router {
  const { ledger, releaseOn } = options;
  const { changeSignal } = options;
  const pollIntervalMs = options.pollIntervalMs ?? (changeSignal ? 250 : 25);
  const wait = (ms: number) => (changeSignal ? changeSignal.wait(ms) : timerWait(ms));
  const router = express.Router();

  const changeJson = (change: ChangeWithPayment) => ({
    cursor: encodeCursor(change.seq),
    kind: change.kind,
    paymentId: change.paymentId,
    fromStage: change.fromStage,
    toStage: change.toStage,
    fromStatusCode: change.fromStatusCode,
    toStatusCode: change.toStatusCode,
    cause: change.cause,
    at: new Date(change.at).toISOString(),
    payment: paymentJson(change.payment, releaseOn),
  });

  router.get('/v1/changes', async (req, res) => {
    const query = zChangesQuery.safeParse(req.query);
    if (!query.success) return sendInvalidRequest(res, query.error);
    const after = decodeCursor(query.data.after);
    if (after === undefined) {
      return sendError(
        res,
        400,
        'invalid_cursor',
        'after: not a cursor this feed gave out (use "0" to start)',
      );
    }
    let gone = false;
    req.on('close', () => (gone = true));
    const deadline = Date.now() + query.data.wait * 1000;
    // A caught-up reader mostly finds nothing new: ask the cheap question first, read the page only when there is one.
    const somethingNew = async () => (await ledger.lastChangeSeq()) > after;
    let changes: ChangeWithPayment[] = [];
    if (query.data.wait === 0 || (await somethingNew()))
      changes = await ledger.listChanges(after, query.data.limit);
    const stopping = () => changeSignal?.closed === true;
    while (changes.length === 0 && Date.now() < deadline && !gone && !stopping()) {
      // Listening before asking: an announcement that arrives while the question is on its way is not missed.
      const woken = wait(Math.min(pollIntervalMs, deadline - Date.now()));
      const found = await somethingNew().catch((error: unknown) => {
        woken.cancel();
        throw error;
      });
      if (!found) {
        await woken.done;
        continue;
      }
      woken.cancel();
      changes = await ledger.listChanges(after, query.data.limit);
    }
    if (gone) return;
    const last = changes.at(-1);
    res.json({
      changes: changes.map(changeJson),
      next: encodeCursor(last ? last.seq : after),
    });
  });
  return router;
}
