/**
 * A one-line progress bar for long work: epoch, bar, loss parts, rate, ETA. Redraws in place on
 * a TTY; elsewhere (CI logs, pipes) prints a line every 10% so logs stay readable.
 */
export interface ProgressState {
  label: string;
  done: number;
  total: number;
  /** Extra fields shown after the bar, e.g. {loss: "265.3", kl: "15.2"}. */
  fields: Record<string, string>;
  /** Units processed per second (e.g. images/s). */
  rate?: number;
  unit?: string;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "--:--";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  const mm = String(m).padStart(2, "0"), ss = String(sec).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export class ProgressBar {
  private lastDecile = -1;
  private readonly tty: boolean;
  private start = performance.now();

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly width = 24,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  render(s: ProgressState): string {
    const frac = s.total > 0 ? Math.min(1, s.done / s.total) : 0;
    const filled = Math.round(frac * this.width);
    const bar = "█".repeat(filled) + "░".repeat(this.width - filled);
    const elapsed = (performance.now() - this.start) / 1000;
    const eta = frac > 0 ? (elapsed / frac) * (1 - frac) : NaN;
    const fields = Object.entries(s.fields).map(([k, v]) => `${k} ${v}`).join("  ");
    const rate = s.rate !== undefined ? `  ${s.rate.toFixed(0)} ${s.unit ?? "it"}/s` : "";
    return `${s.label} ${bar} ${
      String(Math.round(frac * 100)).padStart(3)
    }% ${s.done}/${s.total}  ${fields}${rate}  ETA ${formatDuration(eta)}`;
  }

  update(s: ProgressState): void {
    const line = this.render(s);
    if (this.tty) {
      this.out.write(`\r\x1b[2K${line}`);
    } else {
      const decile = Math.floor((s.done / Math.max(1, s.total)) * 10);
      if (decile !== this.lastDecile) {
        this.lastDecile = decile;
        this.out.write(line + "\n");
      }
    }
  }

  /** Ends the bar's line and prints a summary line; the next update starts a new bar (and ETA). */
  finish(summary: string): void {
    if (this.tty) this.out.write("\r\x1b[2K");
    this.out.write(summary + "\n");
    this.start = performance.now();
    this.lastDecile = -1;
  }
}
