import type { Command } from 'commander';
import type { OperatorAction } from '../ledger';
import type { CliContext } from './context';
import { limitOption } from './options';
import { iso, printJson, printTable } from './output';

function actionJson(action: OperatorAction) {
  const { detailsJson, at, ...rest } = action;
  return {
    ...rest,
    at: iso(at),
    details: detailsJson === null ? null : (JSON.parse(detailsJson) as unknown),
  };
}

export function registerActionsCommand(program: Command, ctx: CliContext): void {
  program
    .command('actions')
    .description('operator actions recorded by the on-call tools, newest first')
    .addOption(limitOption(20))
    .action(async (options: { limit: number }, command: Command) => {
      const actions = (await (await ctx.ledger()).listActions(options.limit)).map(actionJson);
      if (command.optsWithGlobals().json) return printJson(actions);
      printTable(actions, ['id', 'at', 'actor', 'action', 'target', 'count', 'reason']);
    });
}
