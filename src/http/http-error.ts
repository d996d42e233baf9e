import type { ServerResponse } from 'node:http';
import type { Response } from 'express';
import type { z } from 'zod';

/** Answers `body` as JSON on a plain Node response (the webhook path does not go through Express). */
export function writeJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Every refusal answers JSON naming the problem: `{ error: '<code>', message: '...' }`. */
export function sendError(res: ServerResponse, status: number, error: string, message: string): void {
  writeJson(res, status, { error, message });
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
