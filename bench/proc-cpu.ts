import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

export const TICKS_PER_SECOND =
  Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/**
 * A process's CPU counters from /proc/<pid>/stat (Linux), in clock ticks: its own (utime + stime) and its reaped
 * children's (cutime + cstime), with its parent's pid. Undefined once the process is gone.
 */
export function readProcessTicks(pid: number): { own: number; children: number; ppid: number } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is state (field 3); utime is field 14 → index 11.
    const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((i) => Number(fields[i]));
    return { own: utime! + stime!, children: cutime! + cstime!, ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process has used so far, in seconds. */
export function cpuSecondsOf(pid: number): number {
  return (readProcessTicks(pid)?.own ?? 0) / TICKS_PER_SECOND;
}
