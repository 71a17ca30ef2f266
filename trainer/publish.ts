/**
 * The publisher: puts a bundle into the model registry and manages which version is active.
 *   publish <bundle-dir>   copy in (temp dir + rename), verify, flip CURRENT, prune
 *   activate <version>     make a version already in the registry the active one (a version
 *                          the gate refused needs --force)
 *   rollback               re-activate the version that was active before the current one
 *   prune                  drop old versions beyond --keep (never the active or previous one)
 *   list                   versions, the active one marked
 * Verification is what the server will do before serving: manifest schema, sha256 of every
 * file, onnxruntime-node loads each graph with the declared input/output names and shapes, and
 * the probe images reproduce their recorded outputs. A bundle failing any of it never reaches
 * CURRENT. Then the regression gate (trainer/gate.ts, publish_gate.ts) scores the candidate and
 * the active version on the same held-out images and keeps a regressing candidate inactive
 * unless --force, on a registry directory and on S3 (publish_s3.ts) alike. Runs under Node
 * (`deno task publish`, `deno task train -- publish`) and Deno (--allow-ffi, as tests do). The
 * registry layout itself lives in registry/registry_write.ts.
 */
import {
  checkAllGraphs,
  type Graph,
  type GraphRuntime,
  latentSpaceOf,
  type Manifest,
  readManifest,
} from "../bundle/mod.ts";
import { FlagError, type FlagSpecs, formatHelp, parseFlags } from "../common/flags.ts";
import { join, resolve } from "node:path";
import { listVersions, resolveModelName } from "../registry/registry.ts";
import {
  activateVersion,
  prune,
  publishBundle,
  type PublishResult,
  rollback,
} from "../registry/registry_write.ts";
import { isS3Registry } from "../registry/s3_location.ts";
import { addLatentTranslation, FIT_IMAGES, type TranslationOptions } from "./latent_translation.ts";
import {
  checkRefusedBefore,
  evaluationOf,
  GATE_FLAGS,
  type GateOptions,
  gateOptionsFrom,
  inactiveEvaluation,
  listLine,
  publishGated,
} from "./publish_gate.ts";
import {
  TRAFFIC_COMMANDS,
  TRAFFIC_FLAGS,
  TRAFFIC_USAGE,
  trafficCommand,
} from "./publish_traffic.ts";

export const PUBLISH_FLAGS = {
  registry: {
    type: "string",
    default: "models",
    env: "MODEL_REGISTRY",
    help: "registry directory (<registry>/<name>/<version>/ + CURRENT) or s3://bucket/prefix",
  },
  name: { type: "string", help: "model name (default: the manifest's name, or the only model)" },
  // Five: enough to roll back a few steps, few enough that a small disk never fills up.
  keep: { type: "int", default: 5, help: "versions kept after publish/prune (0 keeps all)" },
  translation: {
    type: "boolean",
    default: true,
    help:
      "fit a latent translation from the active version to the new one (latent-translation.json)",
  },
  "data-dir": {
    type: "string",
    env: "FASHION_MNIST_DIR",
    help:
      "Fashion-MNIST IDX files: the held-out images the translation is fitted on and the gate scores",
  },
  "translation-images": {
    type: "int",
    default: 5000,
    help:
      "first N images of the evaluation split the translation is judged on (half fit, half judge with --translation-fit-images 0)",
  },
  "translation-fit-images": {
    type: "int",
    default: FIT_IMAGES,
    help: "first N training images the translation is fitted on (0: fit on held-out images)",
  },
  ...GATE_FLAGS,
  ...TRAFFIC_FLAGS,
} satisfies FlagSpecs;

export const PUBLISH_USAGE =
  `Usage: deno task publish -- <bundle-dir> [--registry models] [--keep 5] [--eval-data <dir>] [--force]
       deno task publish -- activate <version> | rollback | prune | list  [--registry models]
${TRAFFIC_USAGE}`;

/** onnxruntime-node as the acceptance check's runtime, loaded only when a check runs. */
export async function onnxRuntimeNode(): Promise<GraphRuntime<Graph>> {
  return (await import("./ort_node.ts")).nodeGraphRuntime();
}

/**
 * The server's acceptance check (bundle/accept.ts) on onnxruntime-node, for each serving graph
 * (fp32 and int8): IO names, dtypes and shapes, the probe set within its tolerance, decoder
 * output within [0, 1]. Throws BundleError
 * naming the file and the reason.
 */
export async function verifyWithOnnxRuntime(dir: string, manifest: Manifest): Promise<void> {
  // Every serving graph (fp32, int8 when present): a server may be started with either.
  await checkAllGraphs(dir, manifest, await onnxRuntimeNode());
}

export interface PublishCommandOptions {
  registry: string;
  name?: string;
  keep?: number;
  /** Fit the latent translation from the active version (default true; file registries). */
  translation?: boolean;
  translationOptions?: TranslationOptions;
  /**
   * Run the regression gate against the active version (trainer/gate.ts; directory and S3
   * registries). The CLI and `train --publish` always do; library callers opt in. A refusal
   * keeps the version in the registry inactive and throws GateRefusedError.
   */
  gate?: GateOptions;
}

/**
 * Publishes with full verification (what `deno task publish` and `train --publish` run), the
 * regression gate when `opts.gate` is given (publish_gate.ts publishGated, the same for both
 * registries), and, when another version is active in a file registry, adds the latent
 * translation from it. A translation that cannot be fitted (no data, an unreadable old bundle)
 * is logged and skipped: the new version still publishes, and the server refuses to translate
 * from the old space, saying why.
 */
export async function publish(
  bundleDir: string,
  opts: PublishCommandOptions,
  env: Record<string, string | undefined> = globalThis.process?.env ?? {},
): Promise<PublishResult> {
  if (isS3Registry(opts.registry)) {
    // The AWS SDK takes a second or more to import: only S3 publishes load it.
    const { publishToS3 } = await import("./publish_s3.ts");
    return await publishToS3(opts.registry, bundleDir, {
      name: opts.name,
      keep: opts.keep ?? 0,
      verify: verifyWithOnnxRuntime,
      runtime: onnxRuntimeNode,
      gate: opts.gate,
      env,
    });
  }
  const log = opts.translationOptions?.log ?? ((s: string) => console.error(s));
  const augment = async (dir: string, manifest: Manifest, active: { dir: string } | null) => {
    if (!active) return;
    try {
      const old = await readManifest(active.dir);
      if (latentSpaceOf(old) === latentSpaceOf(manifest)) return; // declared compatible
      await addLatentTranslation(dir, manifest, active.dir, old, await onnxRuntimeNode(), {
        ...opts.translationOptions,
        log,
      });
    } catch (e) {
      log(`no latent translation from ${active.dir}: ${(e as Error).message}`);
    }
  };
  const translate = opts.translation === false ? undefined : augment;
  if (!opts.gate) {
    return publishBundle(bundleDir, { ...where(opts), augment: translate });
  }
  const manifest = await readManifest(resolve(bundleDir));
  const name = opts.name ?? manifest.name;
  const modelDir = join(resolve(opts.registry), name);
  return await publishGated(manifest, opts.gate, onnxRuntimeNode, {
    inactiveEvaluation: (version) => inactiveEvaluation(modelDir, version),
    publish: (activate, augment) => publishBundle(bundleDir, { ...where(opts), activate, augment }),
    activate: async (version, forced) => {
      await activateVersion(opts.registry, name, version, "publish", forced);
    },
  }, translate);
}

function where(opts: PublishCommandOptions) {
  const { registry, name, keep } = opts;
  return { registry, name, keep, verify: verifyWithOnnxRuntime };
}

// Never through CURRENT: activate and rollback are how a damaged CURRENT gets repaired.
const modelName = resolveModelName;

/** The `publish` CLI; returns the exit status. `log` receives progress lines. */
export async function publishMain(
  argv: string[],
  log: (s: string) => void = (s) => console.error(s),
  env: Record<string, string | undefined> = {},
): Promise<number> {
  const args = argv[0] === "--" ? argv.slice(1) : argv;
  const { flags: f, positional } = parseFlags(args, PUBLISH_FLAGS, env);
  if (f.help) {
    console.log(formatHelp(PUBLISH_USAGE, PUBLISH_FLAGS));
    return 0;
  }
  const registry = f.registry as string;
  const name = f.name as string | undefined;
  const keep = f.keep as number;
  const [cmd, ...rest] = positional;
  const noMore = (n: number) => {
    if (rest.length !== n) {
      throw new FlagError(`"${cmd}" takes ${n} argument(s), got ${rest.length}\n${PUBLISH_USAGE}`);
    }
  };
  if (cmd === undefined) {
    throw new FlagError(`Name a bundle directory or a command\n${PUBLISH_USAGE}`);
  }
  const runtime = onnxRuntimeNode, verify = verifyWithOnnxRuntime;
  if (TRAFFIC_COMMANDS.has(cmd)) {
    await trafficCommand(cmd, rest, { registry, name, flags: f, verify, runtime, log });
    return 0;
  }
  if (isS3Registry(registry)) {
    noMore(cmd === "activate" || cmd === "publish" ? 1 : 0);
    const { s3Command } = await import("./publish_s3.ts");
    const gate = gateOptionsFrom(f, log);
    await s3Command(registry, cmd, rest, { name, keep, verify, runtime, gate, log, env });
    return 0;
  }
  if (cmd === "activate") {
    noMore(1);
    const n = await modelName(registry, name);
    const forced = await checkRefusedBefore(join(resolve(registry), n), rest[0], f.force === true);
    const r = await activateVersion(registry, n, rest[0], "activate", forced);
    r.cleaned.forEach((note) => log(`${n}: ${note}`));
    if (r.repaired) log(`${n}: CURRENT was damaged (${r.repaired}); repaired`);
    log(`${n}: active version ${rest[0]} (was ${r.previous ?? "none"})`);
  } else if (cmd === "rollback") {
    noMore(0);
    const n = await modelName(registry, name);
    const r = await rollback(registry, n);
    r.cleaned.forEach((note) => log(`${n}: ${note}`));
    if (r.repaired) log(`${n}: CURRENT was damaged (${r.repaired}); HISTORY chose ${r.to}`);
    log(`${n}: rolled back from ${r.from ?? "none"} to ${r.to}`);
  } else if (cmd === "prune") {
    noMore(0);
    const n = await modelName(registry, name);
    const removed = await prune(registry, n, keep, (note) => log(`${n}: ${note}`));
    log(`${n}: removed ${removed.length ? removed.join(", ") : "nothing"} (keep ${keep})`);
  } else if (cmd === "list") {
    noMore(0);
    const n = await modelName(registry, name);
    for (const v of await listVersions(registry, n)) {
      const e = v.hasManifest ? await evaluationOf(v.dir) : null;
      console.log(listLine(v.version, v.active, e) + (v.hasManifest ? "" : "  (no manifest)"));
    }
  } else {
    const bundleDir = cmd === "publish" ? rest[0] : cmd;
    if (cmd === "publish") noMore(1);
    else if (rest.length) throw new FlagError(`Unexpected argument(s): ${rest.join(" ")}`);
    await publishCommand(bundleDir, { registry, name, keep }, f, log);
  }
  return 0;
}

/** `publish <bundle-dir>`: publishes with the translation flags and says what happened. */
async function publishCommand(
  bundleDir: string,
  where: { registry: string; name?: string; keep: number },
  f: Record<string, unknown>,
  log: (s: string) => void,
): Promise<void> {
  const t0 = performance.now();
  const r = await publish(bundleDir, {
    ...where,
    translation: f.translation as boolean,
    translationOptions: {
      dataDir: f["data-dir"] as string | undefined,
      images: f["translation-images"] as number,
      fitImages: f["translation-fit-images"] as number,
      log,
    },
    gate: gateOptionsFrom(f, log),
  });
  r.cleaned.forEach((note) => log(`${r.name}: ${note}`));
  log(
    `published ${r.name}@${r.version} to ${r.dir} (${r.copied ? "copied" : "already present"}, ` +
      `verified with onnxruntime-node) in ${Math.round(performance.now() - t0)} ms; ` +
      `CURRENT was ${r.previous ?? "none"}` +
      (r.pruned.length ? `; pruned ${r.pruned.join(", ")}` : ""),
  );
}

/** Exit status for an error thrown by publishMain: 2 for usage, 1 for a refused bundle. */
export function reportPublishError(e: unknown, log: (s: string) => void): number {
  if (e instanceof FlagError) {
    log(`error: ${e.message}`);
    return 2;
  }
  log(`error: ${(e as Error).message}`);
  return 1;
}

// deno-lint-ignore no-explicit-any
const proc = (globalThis as any).process;
if (proc?.argv?.[1]?.endsWith("trainer/publish.ts")) {
  const log = (s: string) => proc.stderr.write(s + "\n");
  publishMain(proc.argv.slice(2), log, proc.env).catch((e) => reportPublishError(e, log))
    .then((code: number) => proc.exit(code));
}
