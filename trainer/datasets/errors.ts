/**
 * The error every dataset problem is reported with: it names the file (and line, for listing
 * files) and the reason, and the trainer prints it without a stack trace.
 */
export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DatasetError";
  }
}

/** Up to `max` problems, one a line, then how many more there were. */
export function listProblems(problems: string[], max = 20): string {
  const shown = problems.slice(0, max).map((p) => `  ${p}`);
  if (problems.length > max) shown.push(`  ... and ${problems.length - max} more`);
  return shown.join("\n");
}
