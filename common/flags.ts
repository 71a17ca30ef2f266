/**
 * Command-line flags parsed once into a typed config: every flag declared with its type,
 * default and help text; unknown flags and bad values are errors that say what was wrong.
 * Pure (no Deno or Node APIs) so the trainer's and the server's CLIs share it.
 */

export type FlagType = "string" | "number" | "int" | "boolean";

export interface FlagSpec {
  type: FlagType;
  default?: string | number | boolean;
  help: string;
  /** For strings: the allowed values. */
  choices?: readonly string[];
  /** Environment variable read when the flag is absent. */
  env?: string;
}

export type FlagSpecs = Record<string, FlagSpec>;

/** A string flag limited to `choices`, whose default is the first of them. */
export function choiceFlag(choices: readonly string[], help: string): FlagSpec {
  return { type: "string", default: choices[0], choices, help };
}

export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

type Value = string | number | boolean | undefined;

/** What parseFlags returns for `specs`: one value per flag, and whether --help was given. */
export type ParsedFlags<S extends FlagSpecs> = { [K in keyof S]: Value } & { help: boolean };

function convert(name: string, spec: FlagSpec, raw: string): string | number | boolean {
  switch (spec.type) {
    case "boolean":
      if (["true", "1", "yes"].includes(raw)) return true;
      if (["false", "0", "no"].includes(raw)) return false;
      throw new FlagError(`--${name} takes true or false, got "${raw}"`);
    case "int":
    case "number": {
      const v = Number(raw);
      if (
        raw.trim() === "" || !Number.isFinite(v) || (spec.type === "int" && !Number.isInteger(v))
      ) {
        throw new FlagError(
          `--${name} takes ${spec.type === "int" ? "an integer" : "a number"}, got "${raw}"`,
        );
      }
      return v;
    }
    default:
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new FlagError(`--${name} must be one of ${spec.choices.join(", ")}; got "${raw}"`);
      }
      return raw;
  }
}

/**
 * Parses `--name value`, `--name=value`, `--flag` / `--no-flag` (booleans). Returns the values
 * (defaults and env filled in) and the positional arguments. `--help` sets `help: true`.
 */
export function parseFlags<S extends FlagSpecs>(
  args: readonly string[],
  specs: S,
  env: Record<string, string | undefined> = {},
): { flags: ParsedFlags<S>; positional: string[] } {
  const out: Record<string, Value> = {};
  const positional: string[] = [];
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      // `deno task name -- --flag` passes its "--" through: a leading one separates nothing.
      if (i === 0) continue;
      positional.push(...args.slice(i + 1));
      break;
    }
    if (a === "--help" || a === "-h") {
      help = true;
      continue;
    }
    if (!a.startsWith("--")) {
      positional.push(a);
      continue;
    }
    let name = a.slice(2);
    let raw: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      raw = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    let spec = specs[name];
    if (
      !spec && name.startsWith("no-") && specs[name.slice(3)]?.type === "boolean" &&
      raw === undefined
    ) {
      out[name.slice(3)] = false;
      continue;
    }
    if (!spec) {
      throw new FlagError(
        `Unknown flag --${name} (known: ${
          Object.keys(specs).map((k) => "--" + k).join(", ")
        }, --help)`,
      );
    }
    if (raw === undefined) {
      if (spec.type === "boolean") {
        out[name] = true;
        continue;
      }
      if (i + 1 >= args.length) throw new FlagError(`--${name} needs a value`);
      raw = args[++i];
    }
    spec = specs[name];
    out[name] = convert(name, spec, raw);
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (out[name] !== undefined) continue;
    const e = spec.env ? env[spec.env] : undefined;
    out[name] = e !== undefined && e !== "" ? convert(name, spec, e) : spec.default;
  }
  return { flags: { ...out, help } as ParsedFlags<S>, positional };
}

/**
 * The start of a command that takes flags only (the scripts' mains): parses `args`; on --help
 * prints formatHelp(usage, specs) to stdout and returns null (the command then exits 0);
 * positional arguments are a FlagError.
 */
export function parseCommandFlags<S extends FlagSpecs>(
  args: readonly string[],
  specs: S,
  usage: string,
  env: Record<string, string | undefined> = {},
): ParsedFlags<S> | null {
  const { flags, positional } = parseFlags(args, specs, env);
  if (flags.help) {
    console.log(formatHelp(usage, specs));
    return null;
  }
  if (positional.length) throw new FlagError(`Unexpected argument(s): ${positional.join(" ")}`);
  return flags;
}

/** Help text: one line per flag with type, default and env. */
export function formatHelp(usage: string, specs: FlagSpecs): string {
  const lines = [usage, "", "Flags:"];
  for (const [name, s] of Object.entries(specs)) {
    const type = s.choices ? s.choices.join("|") : s.type;
    const def = s.default !== undefined ? ` (default ${JSON.stringify(s.default)})` : "";
    const env = s.env ? ` [env ${s.env}]` : "";
    lines.push(`  --${name.padEnd(16)} ${type.padEnd(10)} ${s.help}${def}${env}`);
  }
  lines.push(`  --${"help".padEnd(16)} ${"".padEnd(10)} show this help`);
  return lines.join("\n");
}
