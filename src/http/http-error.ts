import type { Response } from 'express';

/** Every refusal answers JSON naming the problem: `{ error: '<code>', message: '...' }`. */
export function sendError(res: Response, status: number, error: string, message: string): void {
  res.status(status).json({ error, message });
}
