import fs from 'node:fs';
import type { Command } from 'commander';
import { signWebhookBody } from '../platform';
import type { CliContext } from './context';
import { actorOf, actorOption, reasonOption } from './options';
import { CliError, printFields, printJson, UsageError } from './output';

interface SendOptions {
  from?: string;
  file?: string;
  key?: string;
  tampered?: boolean;
  url?: string;
  actor?: string;
  reason?: string;
}

const SEND_TIMEOUT_MS = 10_000;
/** Marks a delivery the CLI made, so the receiver can leave it out of metrics and drift reports. */
export const TEST_DELIVERY_HEADER = 'X-Paystate-Test';

/** The body to send: one stored event exactly as it was received (alone, if it came in an array), or a file. */
async function bodyOf(ctx: CliContext, options: SendOptions): Promise<Buffer> {
  if (options.file !== undefined) {
    try {
      return fs.readFileSync(options.file);
    } catch (error) {
      throw new CliError(`cannot read ${options.file}: ${(error as Error).message}`, { cause: error });
    }
  }
  const event = await (await ctx.ledger()).getEvent(options.from!);
  if (!event) throw new CliError(`no stored event ${options.from} in the ledger`);
  if (event.rawBody === null) throw new CliError(`the raw body of ${event.eventId} was cleared by retention`);
  if (event.rawIndex === null) return Buffer.from(event.rawBody, 'utf8');
  const item = (JSON.parse(event.rawBody) as unknown[])[event.rawIndex];
  return Buffer.from(JSON.stringify(item), 'utf8');
}

function receiverUrl(base: string): URL {
  try {
    return new URL('/webhooks', base);
  } catch {
    throw new UsageError(`--url ${base} is not a URL (expected e.g. http://127.0.0.1:3000)`);
  }
}

export function registerSendCommand(program: Command, ctx: CliContext): void {
  program
    .command('send')
    .description(
      'sign a webhook body with the key ring and POST it through the real receiver, marked as a test',
    )
    .option('--from <eventId>', 'send a stored event again')
    .option('--file <path>', 'send this file, byte for byte')
    .option('--key <keyId>', 'sign with this key of WEBHOOK_KEYS (default: the first)')
    .option('--tampered', 'flip one byte after signing: the receiver must answer 401')
    .option('--url <base>', 'receiver base URL (default: http://127.0.0.1:$PORT)')
    .addOption(actorOption())
    .addOption(reasonOption())
    .action(async (options: SendOptions, command: Command) => {
      if ((options.from === undefined) === (options.file === undefined)) {
        throw new UsageError('give exactly one of --from <eventId> or --file <path>');
      }
      const config = ctx.config();
      const target = receiverUrl(options.url ?? `http://127.0.0.1:${config.port}`);
      const keyRing = config.webhook.keyRing;
      const keyId = options.key ?? [...keyRing.keys()][0];
      const secret = keyId === undefined ? undefined : keyRing.get(keyId);
      if (keyId === undefined || secret === undefined) {
        throw new CliError(
          keyRing.size
            ? `no key ${keyId} in WEBHOOK_KEYS (configured: ${[...keyRing.keys()].join(', ')})`
            : 'WEBHOOK_KEYS is not set: no key to sign with',
        );
      }
      // Opened first: a send the ledger cannot record is not made.
      const ledger = await ctx.ledger();
      const body = await bodyOf(ctx, options);
      const signature = signWebhookBody(body, secret);
      if (options.tampered) {
        if (body.length === 0) throw new CliError('cannot tamper with an empty body');
        body[Math.floor(body.length / 2)]! ^= 0x01;
      }
      let response: Response;
      try {
        response = await fetch(target, {
          method: 'POST',
          body: new Uint8Array(body),
          headers: {
            'Content-Type': 'application/json',
            'X-GCS-KeyId': keyId,
            'X-GCS-Signature': signature,
            [TEST_DELIVERY_HEADER]: '1',
          },
          signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
        });
      } catch (error) {
        const cause = (error as Error).cause as Error | undefined;
        throw new CliError(
          `cannot reach the receiver at ${target.origin}: ${cause?.message ?? (error as Error).message}`,
          {
            cause: error,
          },
        );
      }
      const text = await response.text();
      await ledger.recordAction({
        actor: actorOf(options),
        reason: options.reason ?? null,
        action: 'send',
        target: options.from !== undefined ? `event ${options.from}` : `file ${options.file}`,
        count: 1,
        dryRun: false,
        details: { url: target.href, keyId, tampered: Boolean(options.tampered), status: response.status },
      });
      const answer = { status: response.status, keyId, tampered: Boolean(options.tampered), body: text };
      if (command.optsWithGlobals().json) {
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // Not JSON: shown as text.
        }
        return printJson({ ...answer, body: parsed });
      }
      printFields(answer);
    });
}
