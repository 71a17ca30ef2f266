/**
 * A real server in a child process, for the end-to-end tests and the benchmark scripts
 * (scripts/bench_serve.ts, scripts/bench_perf.ts import it from here): starts `deno run` on
 * serve/main.ts (or another module), collects every line it prints on stdout and stderr, waits
 * until it prints "Listening on http://host:port/", and stops it with SIGTERM.
 */
import { readLines } from "../common/lines.ts";

/** The permissions serve/main.ts needs. */
export const SERVE_PERMISSIONS = [
  "--allow-read",
  "--allow-net",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
];

export const SERVE_MAIN = new URL("../serve/main.ts", import.meta.url).pathname;

export interface StartServerOptions {
  /**
   * The module to run. Default: serve/main.ts, started on a free loopback port
   * (`--port 0 --host 127.0.0.1` before `args`). Any other module gets `args` as they are and
   * must print the same "Listening on" line.
   */
  script?: string;
  /** `deno run` permission flags; default SERVE_PERMISSIONS. */
  permissions?: string[];
  /** Extra environment variables for the child (added to this process's environment). */
  env?: Record<string, string>;
  /** How long to wait for the "Listening on" line; default 30 s. */
  startTimeoutMs?: number;
  /** If set, stop() sends SIGKILL when the child has not exited this long after SIGTERM. */
  killAfterMs?: number;
}

export interface ServerProcess {
  /** http://127.0.0.1:port (no trailing slash). */
  url: string;
  port: number;
  pid: number;
  /** Every line printed so far (stdout and stderr, interleaved as read); still growing. */
  log: string[];
  /** SIGTERM (then SIGKILL after killAfterMs, if set); resolves to the exit code. */
  stop(): Promise<number>;
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch { /* already gone */ }
}

/**
 * Starts the server and resolves once it listens. If it exits first or does not listen within
 * startTimeoutMs, it is killed and the promise rejects with its log.
 */
export async function startServer(
  args: string[],
  opts: StartServerOptions = {},
): Promise<ServerProcess> {
  const script = opts.script ?? SERVE_MAIN;
  const listenArgs = opts.script === undefined ? ["--port", "0", "--host", "127.0.0.1"] : [];
  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...(opts.permissions ?? SERVE_PERMISSIONS), script, ...listenArgs, ...args],
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const url = await new Promise<string>((resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`server did not start in ${timeoutMs / 1000} s; log:\n${log.join("\n")}`),
          ),
        timeoutMs,
      );
      const onLine = (l: string) => {
        log.push(l);
        const m = l.match(/Listening on (http:\/\/[^/]+)\//);
        if (m) resolve(m[1].replace("localhost", "127.0.0.1"));
      };
      void readLines(child.stdout, onLine);
      void readLines(child.stderr, onLine);
      void child.status.then((s) =>
        reject(new Error(`server exited with ${s.code} before listening; log:\n${log.join("\n")}`))
      );
    });
    return {
      url,
      port: Number(new URL(url).port),
      pid: child.pid,
      log,
      async stop() {
        kill(child, "SIGTERM");
        const t = opts.killAfterMs === undefined
          ? undefined
          : setTimeout(() => kill(child, "SIGKILL"), opts.killAfterMs);
        try {
          return (await child.status).code;
        } finally {
          clearTimeout(t);
        }
      },
    };
  } catch (e) {
    kill(child, "SIGKILL");
    await child.status;
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The pids answering GET /healthz at `url` (http://host:port) over `tries` fresh connections:
 * with replicas sharing a port (--reuse-port, --replicas) the kernel picks one per connection,
 * and /healthz names it. Stops early once `want` distinct pids answered; failed requests (a
 * replica starting or going away) are skipped.
 */
export async function answeringPids(
  url: string,
  tries: number,
  want = Infinity,
): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < tries && seen.size < want; i++) {
    try {
      const r = await fetch(`${url}/healthz`, { headers: { Connection: "close" } });
      seen.add((await r.json()).pid);
    } catch { /* starting or going away */ }
  }
  return seen;
}
