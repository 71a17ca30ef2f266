/**
 * `--replicas N`: this process plus N-1 copies of it serve one port (SO_REUSEPORT, so the
 * kernel spreads connections over them). Why processes: onnxruntime-node's run() computes on the
 * calling thread, and in one process that thread is also the only HTTP thread; native sessions
 * cannot move to Workers (the addon crashed at exit there, see backend.ts). One process per core
 * gives each core its own HTTP thread and its own in-process session (docs/performance.md).
 *
 * This process supervises the others:
 *   - each is `deno run` on the same module with the same flags, plus `--replicas 1
 *     --reuse-port --port <the port this one got>` and the per-replica thread and worker counts;
 *   - their output is printed with a `[replica <pid>]` prefix;
 *   - one that exits unexpectedly is started again, after a delay that doubles while it keeps
 *     crashing (1 s up to 30 s);
 *   - stop() sends SIGTERM (each finishes its in-flight requests) and waits for them.
 * A replica reads its stdin, which is a pipe from this process, and shuts down when it closes:
 * so the replicas go away with this process even when it is killed with SIGKILL.
 *
 * Metrics: a scrape lands on any replica, so each one serves its own metrics on a loopback
 * control port (announced by a line on stdout, see controlLine()) and /metrics anywhere returns
 * the supervisor's merge of all of them, every sample labelled with its replica (main.ts,
 * metrics.ts mergeReplicaExpositions()).
 */

import { readLines } from "../common/lines.ts";
import { mergeReplicaExpositions } from "./metrics.ts";

/** The environment variable that marks a process as a replica started by a supervisor. */
export const REPLICA_ENV = "LATENT_EDGE_REPLICA_OF";
/** Where a replica finds its supervisor's control server (loopback, for /metrics). */
export const SUPERVISOR_URL_ENV = "LATENT_EDGE_SUPERVISOR_URL";
/** The line a replica prints once its own control server listens. */
const CONTROL_LINE = /^Replica control port (\d+)$/;

/** What a replica prints so that its supervisor can reach its control server. */
export function controlLine(port: number): string {
  return `Replica control port ${port}`;
}

/** The permissions to hand on: what this process was granted, by name, without prompting. */
export function grantedPermissionFlags(): string[] {
  const names = ["read", "write", "net", "env", "ffi", "sys"] as const;
  return names
    .filter((name) => Deno.permissions.querySync({ name }).state === "granted")
    .map((name) => `--allow-${name}`);
}

export interface ReplicaSetOptions {
  /** Processes to start besides this one. */
  count: number;
  /** The module they run (serve/main.ts). */
  script: string;
  /** Flags for `deno run` before the module (permissions, config). */
  denoFlags: string[];
  /** Arguments for the module. */
  args: string[];
  /** Extra environment for them. */
  env?: Record<string, string>;
  /** Where their output lines go (default: console.log). */
  log?: (line: string) => void;
  /** First restart delay, ms (default 1000; doubles up to maxRestartDelayMs while crashing). */
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
}

interface Replica {
  child: Deno.ChildProcess;
  started: number;
  /** Its loopback control server (own /metrics), once it said so. */
  controlPort?: number;
}

export class ReplicaSet {
  #replicas: (Replica | null)[];
  #delays: number[];
  #stopping = false;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  /** Restarts so far (for logs and tests). */
  restarts = 0;

  constructor(readonly opts: ReplicaSetOptions) {
    this.#replicas = Array.from({ length: opts.count }, () => null);
    this.#delays = Array.from({ length: opts.count }, () => opts.restartDelayMs ?? 1000);
  }

  /** Starts every replica; does not wait for them to listen. */
  start(): void {
    for (let i = 0; i < this.opts.count; i++) this.#spawn(i);
  }

  /** Pids of the replicas running now (not this process). */
  get pids(): number[] {
    return this.#replicas.filter((r): r is Replica => r !== null).map((r) => r.child.pid);
  }

  /**
   * Every replica's own metrics (GET /metrics on its control server), each with its pid; a
   * replica that does not answer within `timeoutMs` is named in `missing`.
   */
  async scrape(
    timeoutMs = 2000,
  ): Promise<{ parts: { replica: string; text: string }[]; missing: string[] }> {
    const running = this.#replicas.filter((r): r is Replica => r !== null);
    const parts: { replica: string; text: string }[] = [], missing: string[] = [];
    await Promise.all(running.map(async (r) => {
      try {
        if (r.controlPort === undefined) throw new Error("still starting");
        const res = await fetch(`http://127.0.0.1:${r.controlPort}/metrics`, {
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        parts.push({ replica: String(r.child.pid), text: await res.text() });
      } catch (e) {
        missing.push(`${r.child.pid} (${(e as Error).message})`);
      }
    }));
    return { parts, missing };
  }

  #log(line: string): void {
    (this.opts.log ?? console.log)(line);
  }

  #spawn(i: number): void {
    if (this.#stopping) return;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(Deno.execPath(), {
        args: ["run", ...this.opts.denoFlags, this.opts.script, ...this.opts.args],
        env: { ...this.opts.env, [REPLICA_ENV]: String(Deno.pid) },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      this.#log(`[replicas] cannot start replica ${i + 1}: ${(e as Error).message}`);
      this.#scheduleRestart(i);
      return;
    }
    const replica: Replica = { child, started: performance.now() };
    this.#replicas[i] = replica;
    const prefix = `[replica ${child.pid}] `;
    void readLines(child.stdout, (l) => {
      const m = l.match(CONTROL_LINE);
      if (m) replica.controlPort = Number(m[1]);
      else this.#log(prefix + l);
    });
    void readLines(child.stderr, (l) => this.#log(prefix + l));
    void child.status.then((status) => {
      if (this.#replicas[i] === replica) this.#replicas[i] = null;
      if (this.#stopping) return;
      // A replica that ran a minute was healthy: its next crash starts the backoff over.
      if (performance.now() - replica.started > 60_000) {
        this.#delays[i] = this.opts.restartDelayMs ?? 1000;
      }
      const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
      this.#log(
        `[replicas] replica ${child.pid} exited (${how}); starting another in ${
          this.#delays[i] / 1000
        } s`,
      );
      this.#scheduleRestart(i);
    });
  }

  #scheduleRestart(i: number): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.restarts++;
      this.#spawn(i);
    }, this.#delays[i]);
    this.#timers.add(t);
    this.#delays[i] = Math.min(this.#delays[i] * 2, this.opts.maxRestartDelayMs ?? 30_000);
  }

  /**
   * SIGTERM to every replica (each drains its in-flight requests), then waits; SIGKILL for any
   * still running after `killAfterMs`.
   */
  async stop(killAfterMs = 15_000): Promise<void> {
    this.#stopping = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const running = this.#replicas.filter((r): r is Replica => r !== null);
    for (const r of running) signal(r.child, "SIGTERM");
    const kill = setTimeout(() => {
      for (const r of running) signal(r.child, "SIGKILL");
    }, killAfterMs);
    try {
      await Promise.all(running.map((r) => r.child.status));
    } finally {
      clearTimeout(kill);
    }
  }
}

/**
 * In a replica: calls `onOrphaned` once the supervisor's end of stdin closes (it stopped or
 * died). Does nothing in a process that was not started as a replica.
 */
export function watchSupervisor(onOrphaned: () => void): void {
  if (!isReplica()) return;
  void (async () => {
    try {
      for await (const _ of Deno.stdin.readable) { /* the supervisor never writes */ }
    } catch { /* closed either way */ }
    onOrphaned();
  })();
}

/** How one process of a replica set answers /metrics, and its loopback control server. */
export interface ReplicaMetrics {
  control: Deno.HttpServer<Deno.NetAddr>;
  /** All replicas' metrics, merged (what GET /metrics answers). */
  render(): Promise<string>;
  /** For the replicas' environment (supervisor only): where to find this control server. */
  env: Record<string, string>;
}

/** A loopback server answering GET `path` with `handler()`'s text, 404 otherwise. */
function loopback(path: string, handler: () => Promise<string> | string) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (new URL(req.url).pathname !== path) return new Response("not here", { status: 404 });
    return new Response(await handler(), { headers: { "Content-Type": "text/plain" } });
  });
}

/**
 * The supervisor's side: its control server answers /metrics/all with every replica's metrics
 * (its own from `own()`, the others' scraped from their control servers) merged.
 */
export function supervisorMetrics(own: () => string, set: () => ReplicaSet | null): ReplicaMetrics {
  const render = async () => {
    const { parts, missing } = (await set()?.scrape()) ?? { parts: [], missing: [] };
    const note = missing.map((m) => `# replica ${m} did not answer this scrape\n`).join("");
    return note + mergeReplicaExpositions([{ replica: String(Deno.pid), text: own() }, ...parts]);
  };
  const control = loopback("/metrics/all", render);
  return {
    control,
    render,
    env: { [SUPERVISOR_URL_ENV]: `http://127.0.0.1:${control.addr.port}` },
  };
}

/**
 * A replica's side: its control server answers /metrics with its own metrics (announced to the
 * supervisor by controlLine() on stdout), and /metrics on the service port asks the supervisor
 * for everyone's, falling back to its own when the supervisor does not answer.
 */
export function replicaMetrics(own: () => string): ReplicaMetrics {
  const control = loopback("/metrics", own);
  console.log(controlLine(control.addr.port));
  const all = `${Deno.env.get(SUPERVISOR_URL_ENV)}/metrics/all`;
  const render = async () => {
    try {
      const res = await fetch(all, { signal: AbortSignal.timeout(3000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return await res.text();
    } catch (e) {
      return `# the supervisor did not answer (${(e as Error).message}): this replica only\n` +
        mergeReplicaExpositions([{ replica: String(Deno.pid), text: own() }]);
    }
  };
  return { control, render, env: {} };
}

/** True in a process started by a ReplicaSet. */
export function isReplica(): boolean {
  try {
    return Boolean(Deno.env.get(REPLICA_ENV));
  } catch {
    return false; // no --allow-env: not started by us (we always pass it on)
  }
}

function signal(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    child.kill(sig);
  } catch { /* already gone */ }
}
