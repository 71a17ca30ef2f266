/**
 * The size of onnxruntime-web's WebAssembly heap, which the edge profile reports after every
 * swap: its linear memory only ever grows, so whether memory stays bounded across versions is
 * whether this number stops growing (the sessions of a retired version are freed inside it and
 * reused by the next). onnxruntime-web's threaded build creates its memory with
 * `new WebAssembly.Memory(...)`; trackWasmMemory() wraps that constructor to keep a reference
 * to each memory created afterwards, so it must run before onnxruntime-web initialises.
 */
const memories: WebAssembly.Memory[] = [];
let tracking = false;

export function trackWasmMemory(): void {
  if (tracking) return;
  tracking = true;
  const Original = WebAssembly.Memory;
  const Tracked = function (descriptor: WebAssembly.MemoryDescriptor) {
    const memory = new Original(descriptor);
    memories.push(memory);
    return memory;
  } as unknown as typeof WebAssembly.Memory;
  Tracked.prototype = Original.prototype;
  (WebAssembly as { Memory: typeof WebAssembly.Memory }).Memory = Tracked;
}

/** Bytes of every WebAssembly memory created since trackWasmMemory(). */
export function wasmHeapBytes(): number {
  return memories.reduce((sum, m) => sum + m.buffer.byteLength, 0);
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/**
 * The line the edge logs when `version` starts serving: the wasm heap and the process's memory
 * by owner (RSS, V8's JS heap, memory V8 counts as external: ArrayBuffers outside the heap).
 * With --v8-flags=--expose-gc (benchmarks only) it collects garbage first, so growth that
 * remains is memory something still holds.
 */
export function memoryLine(version: string): string {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const m = Deno.memoryUsage();
  return `wasm heap ${mib(wasmHeapBytes())} MiB, rss ${mib(m.rss)} MiB, js heap ${
    mib(m.heapUsed)
  } of ${mib(m.heapTotal)} MiB, external ${mib(m.external)} MiB${
    gc ? " after gc" : ""
  } serving ${version}`;
}
