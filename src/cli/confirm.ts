import readline from 'node:readline/promises';
import { UsageError } from './output';

/**
 * A bulk change goes ahead with `--yes`, or when the operator answers y at a terminal. Without a terminal and
 * without `--yes` it is refused: a script must say so explicitly.
 */
export async function confirmBulk(question: string, yes: boolean | undefined): Promise<boolean> {
  if (yes) return true;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new UsageError(`${question.replace(/\?$/, '')}: needs --yes (no terminal to ask)`);
  }
  const prompt = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await prompt.question(`${question} [y/N] `)).trim());
  } finally {
    prompt.close();
  }
}
