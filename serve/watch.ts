/**
 * Noticing new versions: watches the registry directory (the directory, recursively, not the
 * CURRENT file: publishers replace CURRENT by rename, which a watch on the file itself would
 * lose) and calls back once per burst of events (debounced: a publish renames a bundle
 * directory and then CURRENT; both land in one callback). A poll timer calls back too, as the
 * safety net for what file events cannot see: a registry on a network mount written by another
 * host, a registry directory created after start, and HTTP registries, which only poll. The
 * callback is expected to be cheap when nothing changed (the reloader just reads CURRENT).
 */

export interface WatchOptions {
  /** Quiet time after the last event before calling back, ms (default 50). */
  debounceMs?: number;
  /** Call back at least this often even without events, ms; 0 disables polling. */
  pollMs?: number;
  log?: (line: string) => void;
}

export interface Watcher {
  close(): void;
}

/** Paths below hidden entries are publishers' temporary files; their events are noise. */
function interesting(root: string, path: string): boolean {
  const rel = path.startsWith(root) ? path.slice(root.length) : path;
  return !rel.split("/").some((seg) => seg.startsWith("."));
}

export function watchRegistry(
  dir: string | undefined,
  onChange: (why: string) => void,
  opts: WatchOptions = {},
): Watcher {
  const debounceMs = opts.debounceMs ?? 50;
  const log = opts.log ?? ((l: string) => console.error(l));
  let timer: ReturnType<typeof setTimeout> | null = null;
  let poll: ReturnType<typeof setInterval> | null = null;
  let fsw: Deno.FsWatcher | null = null;
  let closed = false;

  const kick = () => {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      if (!closed) onChange("registry changed");
    }, debounceMs);
  };

  if (dir !== undefined) {
    try {
      fsw = Deno.watchFs(dir, { recursive: true });
      (async () => {
        try {
          for await (const ev of fsw!) {
            if (ev.paths.some((p) => interesting(dir, p))) kick();
          }
        } catch (e) {
          if (!closed) {
            log(`Registry watch on ${dir} stopped: ${(e as Error).message}; polling only`);
          }
        }
      })();
    } catch (e) {
      fsw = null;
      log(
        `Cannot watch ${dir} (${(e as Error).message}); ${
          opts.pollMs
            ? `polling every ${opts.pollMs} ms instead`
            : "new versions need POST /v1/admin/reload"
        }`,
      );
    }
  }
  if (opts.pollMs && opts.pollMs > 0) {
    poll = setInterval(() => {
      if (!closed) onChange("poll");
    }, opts.pollMs);
  }
  return {
    close() {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      if (poll !== null) clearInterval(poll);
      try {
        fsw?.close();
      } catch {
        // already closed
      }
    },
  };
}
