import { z } from 'zod';

/**
 * True for text holding a lone UTF-16 surrogate (a JSON escape such as `"\ud800"`), which SQLite and PostgreSQL
 * store as other characters: stored, an id or reference would no longer equal the one the event named, so its
 * payment could not be found again by it.
 */
export const hasLoneSurrogate = (text: string) => /\p{Cs}/u.test(text);

/** Text the ledger stores and matches as given. */
export const storedText = (text: z.ZodString) =>
  text.refine((value) => !hasLoneSurrogate(value), 'not well-formed Unicode text (a lone surrogate)');
