/**
 * The body of one session worker (see worker.ts): a Deno Worker that owns an onnxruntime
 * instance and the sessions of one loaded model. It exists so that retiring a model returns
 * onnxruntime-web's WebAssembly memory, which never shrinks: terminating the worker drops its
 * isolate and the whole wasm heap with it. Messages carry plain typed arrays only.
 *
 * Plain JavaScript with no static imports, on purpose: Deno type-checks a TypeScript worker
 * (and anything it imports) every time one is spawned under `deno test`, which costs seconds per
 * swap. The runtime package URL and its settings arrive in the "init" message (backend.ts
 * runtimeSetup(), the one definition), and the Tensor in / copy out below mirrors backend.ts
 * wrap(). "init" also runs a one-node identity graph, so the wasm module is compiled and
 * instantiated before a real model arrives (the start-up a standby worker hides from a swap).
 *
 * Requests run strictly one after another in arrival order (the main thread may send the next
 * batch while one runs, so it is waiting here when the run ends); a session is never re-entered.
 *
 * Requests:  {id, op: "init", ortUrl, setup} | {id, op: "create", model: Uint8Array}
 *            | {id, op: "run", session, feeds: {name: {data, dims}}} | {id, op: "release", session}
 * Replies:   {id, ok: true, result} | {id, ok: false, error: string}; a run's result is
 *            {outputs, seconds}: the outputs and the time the run itself took in here.
 */

/** @type {any} */
let ort = null;
/** @type {any} */
let sessionOptions = null;
/** @type {Map<number, any>} */
const sessions = new Map();
let nextSession = 1;

/** ONNX ModelProto of y = Identity(x), x float32 [1]: enough to initialise the runtime. */
function identityModel() {
  const enc = new TextEncoder();
  /** @param {number} n */
  const varint = (n) => {
    const out = [];
    while (n > 127) out.push((n & 127) | 128), n >>>= 7;
    out.push(n);
    return out;
  };
  /** @param {number} no @param {number} v */
  const field = (no, v) => [...varint(no << 3), ...varint(v)];
  /** @param {number} no @param {ArrayLike<number>} b */
  const bytes = (no, b) => [...varint((no << 3) | 2), ...varint(b.length), ...Array.from(b)];
  /** @param {number} no @param {string} s */
  const str = (no, s) => bytes(no, enc.encode(s));
  // ValueInfo{name, type: Type{tensor_type: {elem_type: FLOAT, shape: {dim: [{dim_value: 1}]}}}}
  /** @param {string} name */
  const valueInfo = (name) =>
    str(1, name).concat(bytes(2, bytes(1, [...field(1, 1), ...bytes(2, bytes(1, field(1, 1)))])));
  const node = [...str(1, "x"), ...str(2, "y"), ...str(4, "Identity")];
  const graph = [
    ...bytes(1, node),
    ...str(2, "warmup"),
    ...bytes(11, valueInfo("x")),
    ...bytes(12, valueInfo("y")),
  ];
  const opset = [...str(1, ""), ...field(2, 13)];
  return new Uint8Array([...field(1, 7), ...bytes(7, graph), ...bytes(8, opset)]);
}

/** Runtime metadata as plain objects (the runtime's may not survive structured cloning). */
function plainMetadata(/** @type {any[] | undefined} */ meta) {
  return meta?.map((m) => ({
    name: m.name,
    isTensor: m.isTensor,
    type: m.type,
    shape: m.shape ? [...m.shape] : undefined,
  }));
}

/** @param {any} s @param {Record<string, {data: Float32Array, dims: number[]}>} feeds */
async function run(s, feeds) {
  /** @type {Record<string, any>} */
  const ortFeeds = {};
  for (const [name, t] of Object.entries(feeds)) {
    ortFeeds[name] = new ort.Tensor("float32", t.data, t.dims);
  }
  const out = await s.run(ortFeeds);
  /** @type {Record<string, {data: Float32Array, dims: number[]}>} */
  const result = {};
  for (const name of Object.keys(out)) {
    const t = out[name];
    if (t.type !== "float32") {
      throw new Error(`output "${name}" has dtype ${t.type}, expected float32`);
    }
    // Copy out of the wasm heap, which the next run reuses.
    result[name] = { data: new Float32Array(t.data), dims: Array.from(t.dims) };
    t.dispose?.();
  }
  return result;
}

/** @param {any} req @returns {Promise<{result: unknown, transfer?: ArrayBuffer[]}>} */
async function handle(req) {
  if (req.op === "init") {
    ort = await import(req.ortUrl);
    if (req.setup.wasmNumThreads) ort.env.wasm.numThreads = req.setup.wasmNumThreads;
    ort.env.logLevel = "error";
    sessionOptions = req.setup.sessionOptions;
    const s = await ort.InferenceSession.create(identityModel(), sessionOptions);
    await run(s, { x: { data: new Float32Array([1]), dims: [1] } });
    await s.release();
    return { result: null };
  }
  if (!ort) throw new Error("the session worker was not initialised");
  if (req.op === "create") {
    const s = await ort.InferenceSession.create(req.model, sessionOptions);
    const id = nextSession++;
    sessions.set(id, s);
    return {
      result: {
        session: id,
        inputNames: [...s.inputNames],
        outputNames: [...s.outputNames],
        inputMetadata: plainMetadata(s.inputMetadata),
        outputMetadata: plainMetadata(s.outputMetadata),
      },
    };
  }
  const s = sessions.get(req.session);
  if (!s) throw new Error(`session ${req.session} does not exist in this worker (released?)`);
  if (req.op === "run") {
    const t0 = performance.now();
    const outputs = await run(s, req.feeds);
    const seconds = (performance.now() - t0) / 1000;
    // The outputs are fresh copies: hand their buffers over instead of cloning them again.
    return {
      result: { outputs, seconds },
      transfer: Object.values(outputs).map((t) => /** @type {ArrayBuffer} */ (t.data.buffer)),
    };
  }
  if (req.op === "release") {
    sessions.delete(req.session);
    await s.release();
    return { result: null };
  }
  throw new Error(`unknown request ${JSON.stringify(req.op)}`);
}

/** @type {any} */
const scope = self;
/** Requests run one at a time, in arrival order, even when the main thread sends the next early. */
let chain = Promise.resolve();
scope.onmessage = (/** @type {MessageEvent} */ e) => {
  const req = e.data;
  chain = chain.then(async () => {
    try {
      const { result, transfer } = await handle(req);
      scope.postMessage({ id: req.id, ok: true, result }, transfer ?? []);
    } catch (err) {
      scope.postMessage({
        id: req.id,
        ok: false,
        error: /** @type {Error} */ (err)?.message ?? String(err),
      });
    }
  });
};
