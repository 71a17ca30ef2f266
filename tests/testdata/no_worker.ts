// Preloaded by tests/edge_serve_test.ts: an edge isolate (Deno Deploy, Cloudflare Workers) has
// no Web Workers, so the edge profile must run with none.
delete (globalThis as { Worker?: unknown }).Worker;
