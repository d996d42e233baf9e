import { asc, desc } from 'drizzle-orm';
import { eventFilterWhere } from './event-filter';
import { operatorActionRow } from './operations';
import type { EventFilter, OperatorAction, OperatorActionInput, StoredEvent } from './ledger';
import { events, operatorActions } from './schema';
import type { Db } from './sqlite-store';

export function listEventsQuery(db: Db, filter: EventFilter): StoredEvent[] {
  return db
    .select()
    .from(events)
    .where(eventFilterWhere(events, filter))
    .orderBy(asc(events.seq))
    .limit(filter.limit)
    .all();
}

export function recordActionQuery(db: Db, input: OperatorActionInput, at: number): OperatorAction {
  return db.insert(operatorActions).values(operatorActionRow(input, at)).returning().get();
}

export function listActionsQuery(db: Db, limit: number): OperatorAction[] {
  return db.select().from(operatorActions).orderBy(desc(operatorActions.id)).limit(limit).all();
}

class DryRunRollback extends Error {}

/** Runs `work` in a write transaction; a dry run rolls it back after reading its result. */
export function inTransaction<T>(db: Db, dryRun: boolean, work: (tx: Db) => T): T {
  let result: T | undefined;
  try {
    db.transaction(
      (tx) => {
        result = work(tx);
        if (dryRun) throw new DryRunRollback();
      },
      { behavior: 'immediate' },
    );
  } catch (error) {
    if (!(error instanceof DryRunRollback)) throw error;
  }
  return result as T;
}
