import type { Response } from 'express';
import type { z } from 'zod';

/** Every refusal answers JSON naming the problem: `{ error: '<code>', message: '...' }`. */
export function sendError(res: Response, status: number, error: string, message: string): void {
  res.status(status).json({ error, message });
}

/** 400 naming the first bad field of a query or body. */
export function sendInvalidRequest(res: Response, error: z.ZodError): void {
  const issue = error.issues[0];
  const field = issue?.path.join('.') || (issue?.code === 'unrecognized_keys' ? issue.keys.join(', ') : '');
  res.status(400).json({
    error: 'invalid_request',
    message: `${field ? `${field}: ` : ''}${issue?.message ?? 'invalid request'}`,
    field: field || null,
  });
}

/** 400 naming one field that passed the schema but not a later check (an unknown cursor). */
export function sendInvalidField(res: Response, field: string, message: string): void {
  res.status(400).json({ error: 'invalid_request', message: `${field}: ${message}`, field });
}
