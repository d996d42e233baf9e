import { Presets, SingleBar } from 'cli-progress';

export interface Progress {
  increment(): void;
  stop(): void;
}

/** A progress bar on stderr, only when stderr is a terminal (never in pipes, logs or tests). */
export function startProgress(total: number, label: string): Progress {
  if (!process.stderr.isTTY || total < 2) return { increment: () => undefined, stop: () => undefined };
  const bar = new SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {value}/{total}`, hideCursor: true },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  return { increment: () => bar.increment(), stop: () => bar.stop() };
}
