import type { Command } from 'commander';
import type { Config } from '../config';
import { createPlatformClient, signServerRequest } from '../platform';
import type { CliContext } from './context';
import { CliError, printJson, printLine, printTable } from './output';

type Credentials = NonNullable<Config['platform']['credentials']>;

type KeyVerdict = { keyId: string; result: 'valid' | 'invalid' | 'error'; detail: string | null };

/**
 * Asks the platform whether one webhook key pair is valid: `POST /v2/{merchantId}/webhooks/validateCredentials`
 * with `{ key, secret }` as the official SDK sends it, signed with v1HMAC like every Server API call.
 */
async function validateWebhookKey(config: Config, credentials: Credentials, keyId: string, secret: string) {
  const path = `/v2/${encodeURIComponent(credentials.merchantId)}/webhooks/validateCredentials`;
  const headers: Record<string, string> = {
    Date: new Date().toUTCString(),
    'Content-Type': 'application/json',
  };
  headers.Authorization = signServerRequest(
    {
      method: 'POST',
      contentType: headers['Content-Type'],
      date: headers.Date!,
      xGcsHeaders: headers,
      pathAndQuery: path,
    },
    credentials.apiKeyId,
    credentials.apiSecret,
  );
  let response: Response;
  try {
    response = await fetch(new URL(path, config.platform.url), {
      method: 'POST',
      headers,
      body: JSON.stringify({ key: keyId, secret }),
      signal: AbortSignal.timeout(config.platform.timeoutMs),
    });
  } catch (error) {
    const cause = (error as Error).cause as Error | undefined;
    return {
      keyId,
      result: 'error',
      detail: `platform unreachable: ${cause?.message ?? (error as Error).message}`,
    } as const;
  }
  const text = await response.text();
  let answer: { result?: unknown; errors?: { id?: unknown }[] } | undefined;
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    answer = undefined;
  }
  if (response.ok && answer?.result === 'VALID') return { keyId, result: 'valid', detail: null } as const;
  if (response.ok && answer?.result === 'INVALID') return { keyId, result: 'invalid', detail: null } as const;
  const id = answer?.errors?.[0]?.id;
  return {
    keyId,
    result: 'error',
    detail: `platform answered ${response.status}${typeof id === 'string' ? ` (${id})` : ''}`,
  } as const;
}

export function registerCheckCommands(program: Command, ctx: CliContext): void {
  program
    .command('keys')
    .description('webhook keys (WEBHOOK_KEYS)')
    .command('check')
    .description('ask the platform whether each configured webhook key is valid')
    .action(async (_options: unknown, command: Command) => {
      const config = ctx.config();
      const credentials = ctx.platformCredentials();
      const keyRing = config.webhook.keyRing;
      if (!keyRing.size) throw new CliError('WEBHOOK_KEYS is not set: no webhook keys to check');
      const verdicts: KeyVerdict[] = [];
      for (const [keyId, secret] of keyRing)
        verdicts.push(await validateWebhookKey(config, credentials, keyId, secret));
      if (command.optsWithGlobals().json) printJson(verdicts);
      else printTable(verdicts, ['keyId', 'result', 'detail']);
      const bad = verdicts.filter((verdict) => verdict.result !== 'valid').length;
      if (bad) throw new CliError(`${bad} of ${verdicts.length} webhook key(s) not valid`);
    });

  program
    .command('platform')
    .description('the platform Server API (PLATFORM_URL)')
    .command('check')
    .description('probe the platform credentials, as the reconciler does (services/testconnection)')
    .action(async (_options: unknown, command: Command) => {
      const config = ctx.config();
      const platform = createPlatformClient({
        url: config.platform.url,
        ...ctx.platformCredentials(),
        timeoutMs: config.platform.timeoutMs,
        log: ctx.log,
      });
      try {
        const probe = await platform.testConnection();
        if (command.optsWithGlobals().json) printJson({ url: config.platform.url, ...probe });
        else
          printLine(
            probe.ok
              ? `ok: ${config.platform.url} accepts the credentials`
              : `failed (${probe.reason}): ${probe.message}`,
          );
        if (!probe.ok) throw new CliError(`platform check failed: ${probe.reason}`);
      } finally {
        platform.close();
      }
    });
}
