import { UnrecoverableError, type Job } from 'bullmq';
import type { Command } from 'commander';
import type { PaymentStatusView, PaymentView } from '../ledger';
import { createPlatformClient, PlatformError } from '../platform';
import { createPollProcessor, type PaymentPollJob } from '../queue';
import type { CliContext } from './context';
import { actorOf, actorOption, reasonOption } from './options';
import { CliError, printJson, printLine, stateText } from './output';

function statusOf(payment: PaymentView | undefined): PaymentStatusView | null {
  if (!payment) return null;
  const { statusCode, stage, capturedTotal, refundedTotal, changeTime } = payment;
  return { statusCode, stage, capturedTotal, refundedTotal, changeTime };
}

export function registerReconcileCommand(program: Command, ctx: CliContext): void {
  program
    .command('reconcile')
    .description(
      "poll the platform for one payment now, through the reconciler's poll path, and show the change",
    )
    .argument('<paymentId>')
    .addOption(actorOption())
    .addOption(reasonOption())
    .action(async (paymentId: string, options: { actor?: string; reason?: string }, command: Command) => {
      const config = ctx.config();
      const credentials = ctx.platformCredentials();
      const ledger = await ctx.ledger();
      const held = await ledger.getPayment(paymentId);
      const platform = createPlatformClient({
        url: config.platform.url,
        ...credentials,
        timeoutMs: config.platform.timeoutMs,
        maxRps: config.platform.maxRps,
        log: ctx.log,
      });
      const poll = createPollProcessor({ ledger, platform, log: ctx.log });
      const job: Pick<Job<PaymentPollJob>, 'data'> = {
        data: { paymentId, attempt: (held?.checkAttempts ?? 0) + 1 },
      };
      let result: Awaited<ReturnType<typeof poll>>;
      try {
        result = await poll(job as Job<PaymentPollJob>);
      } catch (error) {
        if (!(error instanceof PlatformError || error instanceof UnrecoverableError)) throw error;
        throw new CliError(error.message, { cause: error });
      } finally {
        platform.close();
      }
      const after = await ledger.getPayment(paymentId);
      await ledger.recordAction({
        actor: actorOf(options),
        reason: options.reason ?? null,
        action: 'reconcile',
        target: `payment ${paymentId}`,
        count: 1,
        dryRun: false,
        details: { outcome: result.outcome },
      });
      if (result.outcome === 'not_found') {
        throw new CliError(`the platform does not know payment ${paymentId} (404)`);
      }
      const report = {
        paymentId,
        outcome: result.outcome,
        reason: result.reason,
        stateChanged: result.stateChanged,
        before: statusOf(held),
        after: statusOf(after),
      };
      if (command.optsWithGlobals().json) return printJson(report);
      printLine(`before: ${stateText(report.before, 'not in the ledger')}`);
      printLine(`after:  ${stateText(report.after, 'not in the ledger')}`);
      printLine(`poll ${report.outcome}: ${report.reason}`);
    });
}
