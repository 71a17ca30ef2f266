/**
 * The acceptance check: the one decision, shared by the publisher and the server, of whether a
 * bundle can be served. A bundle is accepted when its manifest validates, every file matches
 * its size and sha256, each graph loads on the given runtime with the tensors the manifest
 * declares, the probe images reproduce their recorded outputs, and the decoder's output is a
 * 28x28 image in [0, 1], and a latent translation, when present, is well formed. The runtime is passed in (onnxruntime-node in the publisher, the
 * server's backend in the server), so this module owns the rules and no inference.
 */
import { readFile } from "node:fs/promises";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { type Manifest, MANIFEST_FILE } from "./manifest.ts";
import { type Precision, precisionsOf, probeOf, servingRole } from "./precision.ts";
import {
  LATENT_TRANSLATION_FILE,
  LATENT_TRANSLATION_ROLE,
  validateLatentTranslation,
} from "./latent_translation.ts";
import { checkProbe, type ProbeReport } from "./probe.ts";
import {
  BundleError,
  bundleFile,
  type MemoryBundle,
  readManifest,
  verifyBundleFiles,
} from "./read.ts";
import { checkSessionIO, type SessionLike } from "./session_io.ts";

/** A float32 tensor as plain data. */
export interface GraphTensor {
  data: Float32Array;
  dims: number[];
}

/** One loaded graph, as the check needs it: its declared tensors, a run, a release. */
export interface Graph extends SessionLike {
  run(feeds: Record<string, GraphTensor>): Promise<Record<string, GraphTensor>>;
  release(): Promise<void>;
}

/** Loads graphs from ONNX bytes; `name` says which runtime in error messages. */
export interface GraphRuntime<G extends Graph> {
  readonly name: string;
  open(model: Uint8Array): Promise<G>;
}

export interface AcceptedBundle<G extends Graph> {
  manifest: Manifest;
  model: G;
  decoder: G | null;
  probe: ProbeReport;
}

/** Where a bundle's graph of a role comes from: the name errors give it, and its bytes. */
export type BundleFiles = (role: string) => { path: string; bytes: () => Promise<Uint8Array> };

/** The files of a bundle directory. */
export function filesOnDisk(dir: string, manifest: Manifest): BundleFiles {
  return (role) => {
    const path = bundleFile(dir, manifest, role);
    return { path, bytes: async () => new Uint8Array(await readFile(path)) };
  };
}

/** The files of a bundle downloaded into memory (verifyBundleBytes checked them). */
export function filesInMemory(bundle: MemoryBundle): BundleFiles {
  return (role) => {
    const f = bundle.manifest.files.find((x) => x.role === role);
    if (!f) {
      throw new BundleError(
        bundle.label,
        `${MANIFEST_FILE} field "files"`,
        `has no file with role "${role}"`,
      );
    }
    return { path: f.path, bytes: () => Promise.resolve(bundle.files.get(f.path)!) };
  };
}

/** Loads the graph of `role` and checks its tensors; releases it again when they are wrong. */
export async function openGraph<G extends Graph>(
  dir: string,
  manifest: Manifest,
  role: string,
  runtime: GraphRuntime<G>,
  files: BundleFiles = filesOnDisk(dir, manifest),
): Promise<G> {
  const { path, bytes } = files(role);
  let graph: G;
  try {
    graph = await runtime.open(await bytes());
  } catch (e) {
    throw new BundleError(
      dir,
      path,
      `${runtime.name} cannot load it (${(e as Error).message.split("\n")[0]})`,
    );
  }
  try {
    checkSessionIO(manifest, graph, { role, dir });
  } catch (e) {
    await graph.release();
    throw e;
  }
  return graph;
}

/** Runs the serving graph on n images (NCHW [n,1,28,28], float in [0,1]). */
export type Encode = (
  images: Float32Array,
  n: number,
) => Promise<{ probabilities: Float32Array; mu: Float32Array }>;

/** Runs the decoder on n latent vectors; returns n x 784 pixels. */
export type Decode = (z: Float32Array, n: number) => Promise<Float32Array>;

/**
 * The behavioural half of the check, on graphs already loaded: the probe of the serving graph
 * of `precision`, then one probe reconstruction that must be 784 pixels in [0, 1]. The server
 * calls it through its own batch runners, so the check covers the path requests take.
 */
export async function checkGraphs(
  dir: string,
  manifest: Manifest,
  encode: Encode,
  decode: Decode | null,
  precision: Precision = "fp32",
): Promise<ProbeReport> {
  const probe = await checkProbe(manifest, encode, dir, probeOf(manifest, precision));
  if (decode) {
    const px = await decode(Float32Array.from(manifest.probe.cases[0].mu), 1);
    if (px.length !== PIXELS) {
      throw new BundleError(
        dir,
        "decoder",
        `a probe reconstruction has ${px.length} pixels, expected ${PIXELS}`,
      );
    }
    // NaN must fail too, hence the negated comparison.
    const bad = px.findIndex((v) => !(v >= 0 && v <= 1));
    if (bad >= 0) {
      throw new BundleError(
        dir,
        "decoder",
        `pixel ${bad} of a probe reconstruction is ${px[bad]}, outside [0, 1]`,
      );
    }
  }
  return probe;
}

/** The serving graph's encode, run directly on a graph (no batching). */
export function encodeWith(manifest: Manifest, graph: Graph): Encode {
  const o = manifest.outputs;
  return async (images, n) => {
    const r = await graph.run({
      [manifest.input.name]: { data: images, dims: [n, 1, IMAGE_SIZE, IMAGE_SIZE] },
    });
    return { probabilities: r[o.probabilities.name].data, mu: r[o.mu.name].data };
  };
}

/** The decoder's decode, run directly on a graph. */
export function decodeWith(manifest: Manifest, graph: Graph): Decode {
  const d = manifest.decoder!;
  return async (z, n) => {
    const r = await graph.run({ [d.input.name]: { data: z, dims: [n, manifest.latentSize] } });
    return r[d.output.name].data;
  };
}

/** The latent map a bundle may carry (latent_translation.ts) must be well-formed. */
async function checkTranslation(dir: string, manifest: Manifest, files: BundleFiles) {
  if (!manifest.files.some((f) => f.role === LATENT_TRANSLATION_ROLE)) return;
  try {
    const text = new TextDecoder().decode(await files(LATENT_TRANSLATION_ROLE).bytes());
    validateLatentTranslation(JSON.parse(text), manifest);
  } catch (e) {
    throw new BundleError(dir, LATENT_TRANSLATION_FILE, (e as Error).message);
  }
}

/** Where the graphs come from (default: the bundle directory) and which serving graph. */
export interface OpenOptions {
  files?: BundleFiles;
  precision?: Precision;
}

/**
 * Loads the serving graph of `precision` and the decoder of a bundle whose manifest is read;
 * on failure releases what it loaded.
 */
export async function openGraphs<G extends Graph>(
  dir: string,
  manifest: Manifest,
  runtime: GraphRuntime<G>,
  opts: OpenOptions = {},
): Promise<{ model: G; decoder: G | null }> {
  const files = opts.files ?? filesOnDisk(dir, manifest);
  await checkTranslation(dir, manifest, files); // a malformed map refuses the bundle
  const role = servingRole(manifest, opts.precision ?? "fp32");
  const model = await openGraph(dir, manifest, role, runtime, files);
  try {
    const decoder = manifest.decoder
      ? await openGraph(dir, manifest, "decoder", runtime, files)
      : null;
    return { model, decoder };
  } catch (e) {
    await model.release();
    throw e;
  }
}

/**
 * The whole check on `dir` for the serving graph of `precision`: read and verify, load, probe,
 * decoder range. Returns the loaded graphs (the caller owns them); on any failure they are
 * released and a BundleError names the file or field at fault.
 */
export async function acceptBundle<G extends Graph>(
  dir: string,
  runtime: GraphRuntime<G>,
  precision: Precision = "fp32",
): Promise<AcceptedBundle<G>> {
  const manifest = await readManifest(dir);
  await verifyBundleFiles(dir, manifest);
  const { model, decoder } = await openGraphs(dir, manifest, runtime, { precision });
  try {
    const probe = await checkGraphs(
      dir,
      manifest,
      encodeWith(manifest, model),
      decoder ? decodeWith(manifest, decoder) : null,
      precision,
    );
    return { manifest, model, decoder, probe };
  } catch (e) {
    await model.release();
    await decoder?.release();
    throw e;
  }
}

/**
 * The check of every serving graph a bundle carries (fp32, and int8 when present), each on its
 * own probe, on a bundle whose files are verified; what the publisher runs. Releases the graphs.
 */
export async function checkAllGraphs<G extends Graph>(
  dir: string,
  manifest: Manifest,
  runtime: GraphRuntime<G>,
): Promise<Record<Precision, ProbeReport | undefined>> {
  const reports: Record<Precision, ProbeReport | undefined> = { fp32: undefined, int8: undefined };
  for (const precision of precisionsOf(manifest)) {
    const graphs = await openGraphs(dir, manifest, runtime, { precision });
    try {
      reports[precision] = await checkGraphs(
        dir,
        manifest,
        encodeWith(manifest, graphs.model),
        graphs.decoder ? decodeWith(manifest, graphs.decoder) : null,
        precision,
      );
    } finally {
      await graphs.model.release();
      await graphs.decoder?.release();
    }
  }
  return reports;
}
