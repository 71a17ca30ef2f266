/**
 * Multi-threaded tfjs wasm under Node, switched on at run time without editing node_modules.
 * tfjs-backend-wasm hard-codes "no threads" in Node (its WASM_HAS_MULTITHREAD_SUPPORT flag
 * returns false there), and its threaded build hands Emscripten two `blob:` URLs (the pthread
 * worker script and the main script the worker imports), which Node's worker_threads cannot
 * load. While the backend initialises we therefore: set the flag, record the text of every
 * Blob built from strings, answer `URL.createObjectURL` for them with a temp file holding that
 * text, and prepend to the worker script a shim that resolves the main-script blob to its temp
 * file too. Everything is restored once the backend is up. The C++ side sizes its pool from
 * the logical core count (it caps at half of it), so the core count is reported as 2*threads
 * during init.
 */
import * as tf from "@tensorflow/tfjs";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";

// The CommonJS `os` object, which the wasm bundle's require("os") also gets (the ESM namespace
// is frozen and would not let us patch cpus()).
const requireCjs = createRequire(import.meta.url);
const osCjs = requireCjs("os") as { cpus: typeof os.cpus };

/** How the main-script blob's text starts (tfjs wraps the Emscripten factory in this var). */
const MAIN_SCRIPT_START = "var WasmBackendModuleThreadedSimd";

/**
 * The main script is the factory function's source, cut out of the wasm node bundle, so it
 * refers to the bundle's own `var require$$N = require('fs')` aliases and `commonjsGlobal`.
 * Re-declare them (the pthread worker defines a global `require`).
 */
function bundleRequires(): string {
  const bundle = fs.readFileSync(requireCjs.resolve("@tensorflow/tfjs-backend-wasm"), "utf8");
  const decls = [...bundle.matchAll(/^var (require\$\$\d+) = require\((['"][\w:/-]+['"])\);$/gm)];
  // commonjsGlobal: rollup's alias for the global object, also used by the factory.
  return [
    "var commonjsGlobal = globalThis;",
    ...decls.map((m) => `var ${m[1]} = require(${m[2]});`),
  ].join("\n") + "\n";
}

/**
 * XNNPACK's pool threads are Emscripten pthreads that never end, and Emscripten `ref()`s the
 * worker of a running pthread, so Node would never exit. Unref every pool worker (and make
 * later ref() calls no-ops): the main thread blocks on them synchronously anyway.
 */
export function unrefWasmWorkers(): void {
  const mod = (tf.findBackend("wasm") as unknown as {
    wasm?: { PThread?: { unusedWorkers: Worker[]; runningWorkers: Worker[] } };
  })?.wasm;
  const pt = mod?.PThread;
  if (pt == null) return;
  for (
    const w of [...pt.unusedWorkers, ...pt.runningWorkers] as unknown as {
      ref(): void;
      unref(): void;
    }[]
  ) {
    w.ref = () => {};
    w.unref();
  }
}

/**
 * Prepares the wasm backend for `threads` threads; call before `tf.setBackend('wasm')`, then
 * call the returned `restore()` once it resolved (or failed).
 */
export async function enableWasmThreads(
  threads: number,
  log: (s: string) => void,
): Promise<() => void> {
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  if (typeof SharedArrayBuffer === "undefined") {
    throw new Error("wasm threads need SharedArrayBuffer, which this runtime lacks");
  }
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
  wasm.setThreadsCount(threads);

  // Kept until exit: a worker spawned later (pool growth) reads the scripts again.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tfjs-wasm-threads-"));
  process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const writeTemp = (text: string) => {
    const file = path.join(dir, `script${n++}.cjs`);
    fs.writeFileSync(file, text);
    return file;
  };
  const texts = new WeakMap<Blob, string>();
  let mainScriptFile: string | null = null;

  const OrigBlob = globalThis.Blob;
  const origCreate = URL.createObjectURL;
  const origCpus = osCjs.cpus;
  class RecordingBlob extends OrigBlob {
    constructor(parts?: BlobPart[], opts?: BlobPropertyBag) {
      super(parts, opts);
      if (parts && parts.every((p) => typeof p === "string")) {
        const text = (parts as string[]).join("");
        texts.set(this, text);
        if (text.startsWith(MAIN_SCRIPT_START)) mainScriptFile = writeTemp(bundleRequires() + text);
      }
    }
  }
  globalThis.Blob = RecordingBlob as typeof Blob;
  URL.createObjectURL = (obj: Blob) => {
    const text = texts.get(obj);
    if (text == null) return origCreate(obj);
    if (!text.startsWith(MAIN_SCRIPT_START) && text.includes("importScripts")) {
      // The pthread worker script: make its blob -> URL step return the main-script file.
      if (mainScriptFile == null) {
        throw new Error("wasm threads: the main-script blob was not seen before the worker script");
      }
      const shim = `URL.createObjectURL = () => ${
        JSON.stringify(mainScriptFile)
      }; URL.revokeObjectURL = () => {};\n`;
      return writeTemp(shim + text);
    }
    return writeTemp(text);
  };
  // Emscripten's node path asks os.cpus() for the core count; the pool gets at most half.
  osCjs.cpus = () => {
    const real = origCpus();
    const want = Math.max(real.length, 2 * threads);
    return Array.from({ length: want }, (_, i) => real[i % real.length]);
  };
  log(`engine: enabling ${threads} wasm threads (runtime patch; scripts in ${dir})`);
  return () => {
    globalThis.Blob = OrigBlob;
    URL.createObjectURL = origCreate;
    osCjs.cpus = origCpus;
  };
}
