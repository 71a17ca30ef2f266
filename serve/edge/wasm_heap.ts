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
