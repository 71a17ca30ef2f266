/**
 * Runs onnxruntime-web inside workerd (Cloudflare Workers' runtime) on the tiny bundle and
 * prints what happens: compiling wasm from bytes (refused by workerd), then a classification
 * of an all-black image through scripts/workerd/worker.mjs, compared with onnxruntime-node on
 * the same input. Needs a workerd binary (`npm install --ignore-scripts workerd` anywhere; not a
 * project dependency, ~160 MB). Bundles with esbuild into a temporary directory.
 */
import * as esbuild from "esbuild";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadBackend } from "../serve/inference/backend.ts";
import { runFlags } from "./_cli.ts";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";

const flags = runFlags(
  {
    workerd: { type: "string", default: "workerd", help: "the workerd binary" },
    port: { type: "int", default: 18787, help: "loopback port for workerd" },
  } as const,
  "Usage: npx deno run -A scripts/try_workerd.ts --workerd <path to workerd>",
);

const here = (p: string) => new URL(p, import.meta.url).pathname;
const ortDist = here("../node_modules/onnxruntime-web/dist/");
const out = await mkdtemp(join(tmpdir(), "try-workerd-"));
try {
  await esbuild.build({
    entryPoints: [here("./workerd/worker.mjs")],
    bundle: true,
    format: "esm",
    platform: "browser",
    outfile: join(out, "worker.js"),
    external: ["./ort.wasm", "./ort-wasm-simd-threaded.mjs"],
    loader: { ".onnx": "binary" },
    logLevel: "warning",
  });
  await esbuild.stop();
  await copyFile(join(ortDist, "ort-wasm-simd-threaded.wasm"), join(out, "ort.wasm"));
  await copyFile(join(ortDist, "ort-wasm-simd-threaded.mjs"), join(out, "factory.mjs"));
  await writeFile(
    join(out, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:${flags.port}", http = (), service = "main") ]
);
const worker :Workerd.Worker = (
  modules = [
    (name = "worker", esModule = embed "worker.js"),
    (name = "./ort.wasm", wasm = embed "ort.wasm"),
    (name = "./ort-wasm-simd-threaded.mjs", esModule = embed "factory.mjs"),
  ],
  compatibilityDate = "2024-09-23",
);
`,
  );
  const child = new Deno.Command(flags.workerd as string, {
    args: ["serve", join(out, "config.capnp")],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  try {
    const url = `http://127.0.0.1:${flags.port}`;
    let compile: Response | null = null;
    for (let i = 0; i < 100 && !compile; i++) {
      compile = await fetch(`${url}/compile`).catch(() => null);
      if (!compile) await new Promise((r) => setTimeout(r, 100));
    }
    if (!compile) throw new Error("workerd did not start listening");
    console.log(`workerd, WebAssembly.compile(bytes): ${(await compile.text()).trim()}`);
    const first = await (await fetch(`${url}/infer`)).json();
    const again = await (await fetch(`${url}/infer`)).json();
    const { backend } = await loadBackend("native", { threads: 1 });
    const s = await backend.createSession(
      await Deno.readFile(here("../tests/testdata/tiny-bundle/model.onnx")),
    );
    const ref = Array.from(
      (await s.run({
        image: { data: new Float32Array(PIXELS), dims: [1, 1, IMAGE_SIZE, IMAGE_SIZE] },
      })).probabilities
        .data,
    );
    const diff = Math.max(...ref.map((v, i) => Math.abs(v - first.probabilities[i])));
    console.log(
      `workerd, onnxruntime-web on the tiny bundle: class ${first.index}, first request ${first.ms} ms (runtime init + session), next ${again.ms} ms; max |diff| vs onnxruntime-node ${
        diff.toExponential(1)
      }`,
    );
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
} finally {
  await rm(out, { recursive: true, force: true });
}
