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

/** The whole machine's CPU counters from /proc/stat, in clock ticks: all of them, and those stolen. */
export function readMachineTicks(): { total: number; steal: number } {
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user)
  const fields = fs
    .readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .map(Number);
  return { total: fields.reduce((sum, ticks) => sum + ticks, 0), steal: fields[7] ?? 0 };
}

/**
 * The share of the machine's CPU time the hypervisor gave to other guests between two readings: on a shared
 * virtual machine, the figure that says a run was slow because the host was busy, not because of the code.
 */
export function stolenShare(from: { total: number; steal: number }, to = readMachineTicks()): number {
  const total = to.total - from.total;
  return total > 0 ? (to.steal - from.steal) / total : 0;
}
