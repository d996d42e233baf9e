import { getTableName, is } from 'drizzle-orm';
import { getTableConfig as getPgTableConfig, PgTable } from 'drizzle-orm/pg-core';
import { getTableConfig as getSqliteTableConfig, SQLiteTable } from 'drizzle-orm/sqlite-core';
import * as pgSchema from '../../src/ledger/pg-schema';
import * as sqliteSchema from '../../src/ledger/schema';

/**
 * The SQLite and PostgreSQL ledger schemas must describe the same ledger: same tables under the same export
 * names, same columns in the same order, same nullability, defaults, enums, keys, indexes and foreign keys.
 * Each table is reduced to a dialect-neutral description and the two descriptions must be equal.
 */

/** What the two dialects' columns, indexes and foreign keys have in common, as drizzle exposes them. */
interface AnyColumn {
  name: string;
  columnType: string;
  notNull: boolean;
  primary: boolean;
  hasDefault: boolean;
  default: unknown;
  isUnique: boolean;
  uniqueName: string | undefined;
  enumValues: readonly string[] | undefined;
}
interface AnyTableConfig {
  name: string;
  columns: AnyColumn[];
  primaryKeys: { columns: { name: string }[] }[];
  uniqueConstraints: { name?: string; columns: { name: string }[] }[];
  indexes: { config: { name?: string; unique: boolean; columns: unknown[] } }[];
  foreignKeys: {
    getName(): string;
    reference(): { columns: { name: string }[]; foreignTable: object; foreignColumns: { name: string }[] };
  }[];
}

type Kind = 'integer' | 'text' | 'boolean';

const KINDS: Record<string, Kind> = {
  SQLiteInteger: 'integer',
  SQLiteTimestamp: 'integer',
  SQLiteBoolean: 'boolean',
  SQLiteText: 'text',
  PgInteger: 'integer',
  PgSmallInt: 'integer',
  PgBigInt53: 'integer',
  PgBigInt64: 'integer',
  PgSerial: 'integer',
  PgBigSerial53: 'integer',
  PgBigSerial64: 'integer',
  PgBoolean: 'boolean',
  PgText: 'text',
  PgVarchar: 'text',
};

function kindOf(column: AnyColumn): Kind {
  const kind = KINDS[column.columnType];
  if (!kind) throw new Error(`column ${column.name}: no known counterpart for ${column.columnType}`);
  return kind;
}

/** A key the database generates when an insert leaves it out: AUTOINCREMENT, identity or serial. */
function generatesKey(column: AnyColumn): boolean {
  const c = column as AnyColumn & { autoIncrement?: boolean; generatedIdentity?: unknown };
  return c.autoIncrement === true || c.generatedIdentity !== undefined || /Serial/.test(c.columnType);
}

function indexColumnName(column: unknown): string {
  const name = (column as { name?: unknown }).name;
  if (typeof name !== 'string') throw new Error('an index on an expression: compare it by hand');
  return name;
}

function neutralDescription(config: AnyTableConfig) {
  return {
    name: config.name,
    columns: config.columns.map((c) => ({
      name: c.name,
      kind: kindOf(c),
      notNull: c.notNull,
      primary: c.primary,
      generatesKey: generatesKey(c),
      // Column defaults as JS values (drizzle maps false/0/'status' to each dialect's literal).
      default: c.hasDefault && !generatesKey(c) ? c.default : undefined,
      enumValues: c.enumValues ? [...c.enumValues] : undefined,
    })),
    primaryKeys: config.primaryKeys.map((pk) => pk.columns.map((c) => c.name)),
    uniques: [
      ...config.columns.filter((c) => c.isUnique).map((c) => ({ name: c.uniqueName, columns: [c.name] })),
      ...config.uniqueConstraints.map((u) => ({ name: u.name, columns: u.columns.map((c) => c.name) })),
    ].sort((a, b) => String(a.name).localeCompare(String(b.name))),
    indexes: config.indexes
      .map((i) => ({
        name: i.config.name,
        unique: i.config.unique,
        columns: i.config.columns.map(indexColumnName),
      }))
      .sort((a, b) => String(a.name).localeCompare(String(b.name))),
    foreignKeys: config.foreignKeys
      .map((fk) => {
        const ref = fk.reference();
        return {
          name: fk.getName(),
          columns: ref.columns.map((c) => c.name),
          references: `${getTableName(ref.foreignTable as never)}(${ref.foreignColumns.map((c) => c.name).join(',')})`,
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name)),
  };
}

function tablesOf<T>(
  module: Record<string, unknown>,
  isTable: (value: unknown) => value is T,
): Map<string, T> {
  const tables = new Map<string, T>();
  for (const [exportName, value] of Object.entries(module)) if (isTable(value)) tables.set(exportName, value);
  return tables;
}

const sqliteTables = tablesOf(sqliteSchema, (v): v is SQLiteTable => is(v, SQLiteTable));
const pgTables = tablesOf(pgSchema, (v): v is PgTable => is(v, PgTable));

const describeSqlite = (t: SQLiteTable) =>
  neutralDescription(getSqliteTableConfig(t) as unknown as AnyTableConfig);
const describePg = (t: PgTable) => neutralDescription(getPgTableConfig(t) as unknown as AnyTableConfig);

describe('the PostgreSQL ledger schema matches the SQLite one', () => {
  it('exports the same tables under the same names', () => {
    expect(sqliteTables.size).toBeGreaterThan(0);
    expect([...pgTables.keys()].sort()).toEqual([...sqliteTables.keys()].sort());
    for (const [exportName, table] of sqliteTables) {
      expect([exportName, getTableName(pgTables.get(exportName) as PgTable)]).toEqual([
        exportName,
        getTableName(table),
      ]);
    }
  });

  it.each([...sqliteTables.keys()])(
    '%s: same columns, kinds, keys, indexes and foreign keys',
    (exportName) => {
      const sqlite = sqliteTables.get(exportName) as SQLiteTable;
      const pg = pgTables.get(exportName);
      expect(pg).toBeDefined();
      expect(describePg(pg as PgTable)).toEqual(describeSqlite(sqlite));
    },
  );

  it('reads integer columns back as JS numbers on both sides (bigint in "number" mode)', () => {
    for (const [exportName, table] of pgTables) {
      for (const column of getPgTableConfig(table).columns) {
        if (kindOf(column as unknown as AnyColumn) === 'integer') {
          expect([exportName, column.name, column.dataType]).toEqual([exportName, column.name, 'number']);
        }
      }
    }
  });
});
