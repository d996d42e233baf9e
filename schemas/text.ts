import { z } from 'zod';

/**
 * Text the ledger stores and matches as given. A JSON escape can carry a lone UTF-16 surrogate (`"\ud800"`),
 * which SQLite and PostgreSQL store as other characters: the stored id or reference would no longer equal the
 * one the event named, so its payment could not be found again by it.
 */
export const storedText = (text: z.ZodString) =>
  text.refine((value) => !/\p{Cs}/u.test(value), 'not well-formed Unicode text (a lone surrogate)');
