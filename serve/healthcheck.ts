/**
 * The container's HEALTHCHECK: exits 0 when the service on this host answers GET /healthz
 * with 200 within 2 s, 1 otherwise. A script rather than curl, so the image needs no curl.
 *
 *   deno run --allow-net=127.0.0.1 --allow-env=PORT serve/healthcheck.ts
 */
const port = Deno.env.get("PORT") || "8000";
try {
  const r = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) });
  await r.body?.cancel();
  Deno.exit(r.ok ? 0 : 1);
} catch (e) {
  console.error(
    `healthcheck: GET http://127.0.0.1:${port}/healthz failed: ${(e as Error).message}`,
  );
  Deno.exit(1);
}
