/**
 * What the serving benchmarks read from Linux's /proc about the processes they measure: CPU
 * seconds per process, split into the main thread and the rest, and the load average.
 */

/** Clock ticks per second of /proc's CPU times (USER_HZ on Linux). */
const USER_HZ = 100;

/** utime + stime in seconds from the text of a /proc/.../stat file. */
function cpuSeconds(stat: string): number {
  // Fields after the command name (which may hold spaces, so split after its closing paren).
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / USER_HZ;
}

/** CPU seconds used so far by each thread of `pid`, grouped: the main thread and the rest. */
export function cpuOf(pid: number): { main: number; other: number } {
  let main = 0, other = 0;
  for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const s = cpuSeconds(Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/stat`));
      if (Number(t.name) === pid) main += s;
      else other += s;
    } catch { /* the thread ended */ }
  }
  return { main, other };
}

/** CPU seconds used so far by the whole process `pid`; throws once it has exited. */
export function processCpu(pid: number): number {
  return cpuSeconds(Deno.readTextFileSync(`/proc/${pid}/stat`));
}

/** The 1, 5 and 15 minute load averages, as /proc/loadavg prints them. */
export function loadAvg(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}
