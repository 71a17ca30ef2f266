// Starts the TypeScript decode worker: Node 20 workers do not inherit tsx's loader, so the
// worker registers it before importing its code.
import { register } from "tsx/esm/api";

register();
await import("./_decode_worker.ts");
