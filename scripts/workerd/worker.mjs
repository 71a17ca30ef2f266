// A Cloudflare Worker (workerd) running onnxruntime-web on the tiny bundle: the experiment
// behind docs/edge.md's workerd finding, built and run by scripts/try_workerd.ts (deno.json
// excludes this folder: "./ort.wasm" exists only in the bundle workerd loads).
// workerd forbids compiling WebAssembly from bytes at run time, so the .wasm ships as a wasm
// module (compiled at deploy) and emscripten's instantiate is handed that module instead of the
// bytes it would compile; the runtime's .mjs factory ships as a module of its own.
import * as ort from "onnxruntime-web/wasm";
import ortWasm from "./ort.wasm";
import model from "../../tests/testdata/tiny-bundle/model.onnx";

const instantiate = WebAssembly.instantiate.bind(WebAssembly);
WebAssembly.instantiate = (src, imports) =>
  src instanceof WebAssembly.Module
    ? instantiate(src, imports)
    : instantiate(ortWasm, imports).then((instance) => ({ instance, module: ortWasm }));

let session = null;

export default {
  async fetch(req) {
    const path = new URL(req.url).pathname;
    try {
      if (path === "/compile") {
        await WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
        return new Response("compiling wasm from bytes: allowed\n");
      }
      const t0 = Date.now();
      if (!session) {
        ort.env.wasm.numThreads = 1;
        ort.env.wasm.wasmBinary = new Uint8Array(8); // a placeholder, never compiled (see above)
        ort.env.wasm.wasmPaths = { mjs: "./ort-wasm-simd-threaded.mjs" };
        session = await ort.InferenceSession.create(new Uint8Array(model), {
          executionProviders: ["wasm"],
        });
      }
      const out = await session.run({
        image: new ort.Tensor("float32", new Float32Array(784), [1, 1, 28, 28]),
      });
      const p = Array.from(out.probabilities.data);
      return Response.json({
        ms: Date.now() - t0,
        index: p.indexOf(Math.max(...p)),
        probabilities: p,
      });
    } catch (e) {
      return new Response(`${path}: ${e?.stack ?? e}\n`, { status: 500 });
    }
  },
};
