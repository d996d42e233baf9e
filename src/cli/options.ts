import os from 'node:os';
import { InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../config';

/** `--since`/`--until`: an ISO-8601 time, or a duration back from now (`90s`, `15m`, `2h`, `7d`). */
export function parseTime(text: string, now = Date.now()): number {
  if (/^\d+(ms|s|m|h|d)$/.test(text.trim())) return now - parseDuration(text);
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms)) {
    throw new InvalidArgumentError('expected an ISO time (2026-11-27T10:00:00Z) or a duration (2h, 7d).');
  }
  return ms;
}

export function parsePositiveInt(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError('expected a whole number of at least 1.');
  }
  return value;
}

export const sinceOption = (what: string) =>
  new Option('--since <time>', `only ${what} from this time (ISO or a duration back: 2h, 7d)`).argParser(
    (text: string) => parseTime(text),
  );
export const untilOption = (what: string) =>
  new Option('--until <time>', `only ${what} up to this time (ISO or a duration back)`).argParser(
    (text: string) => parseTime(text),
  );
export const limitOption = (fallback: number) =>
  new Option('--limit <n>', 'at most this many rows').argParser(parsePositiveInt).default(fallback);
export const actorOption = () => new Option('--actor <who>', 'who is acting (default: $USER)');
export const reasonOption = () => new Option('--reason <why>', 'why, recorded with the operator action');

/** Who an operator action is recorded for. */
export function actorOf(options: { actor?: string }): string {
  if (options.actor?.trim()) return options.actor.trim();
  if (process.env.USER?.trim()) return process.env.USER.trim();
  try {
    return os.userInfo().username;
  } catch {
    return 'unknown';
  }
}
