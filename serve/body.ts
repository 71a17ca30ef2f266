/**
 * Request bodies under limits: the whole body read with a byte ceiling (413 as soon as it is
 * exceeded) and a deadline (408 when it has not arrived in time), so neither a huge nor a
 * trickling body holds the service. Also the media type of a Content-Type header.
 */
import { ApiError } from "./errors.ts";

/** "Image/PNG; charset=x" -> "image/png". */
export function mediaType(header: string | null | undefined): string {
  return (header ?? "").split(";")[0].trim().toLowerCase();
}

/**
 * Reads the whole body, refusing (413) as soon as it exceeds `max` bytes and (408) when it
 * has not fully arrived `timeoutMs` after the call (0 or unset: no deadline).
 */
export function readBody(req: Request, max: number, timeoutMs = 0): Promise<Uint8Array> {
  if (!(timeoutMs > 0)) return readAll(req, max);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // Best effort (a read in progress locks the stream): the handler ends with the 408 either
      // way, though Deno keeps the socket until the client goes (see docs/performance.md).
      req.body?.cancel().catch(() => {});
      reject(
        new ApiError(
          408,
          "body_timeout",
          `The request body did not arrive within ${timeoutMs} ms; send it at once`,
        ),
      );
    }, timeoutMs);
  });
  return Promise.race([readAll(req, max), deadline]).finally(() => clearTimeout(timer));
}

async function readAll(req: Request, max: number): Promise<Uint8Array> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > max) {
    throw new ApiError(
      413,
      "body_too_large",
      `Request body is ${declared} bytes, above the limit of ${max} bytes`,
    );
  }
  if (declared !== null && /^\d+$/.test(declared)) {
    // A declared length is enforced by the HTTP layer, so one read of the whole body is safe and
    // measured cheaper than pulling stream chunks for the typical small image (and than touching
    // req.body at all, which builds a ReadableStream).
    try {
      return new Uint8Array(await req.arrayBuffer());
    } catch (e) {
      throw new ApiError(400, "bad_body", `Cannot read the request body: ${(e as Error).message}`);
    }
  }
  if (!req.body) return new Uint8Array();
  const reader = req.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw new ApiError(413, "body_too_large", `Request body exceeds the limit of ${max} bytes`);
      }
      parts.push(value);
    }
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(400, "bad_body", `Cannot read the request body: ${(e as Error).message}`);
  }
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}
