/**
 * /docs: a self-contained HTML page rendered from the OpenAPI document (no CDN, no script),
 * listing each endpoint with its parameters, body types and responses, plus curl examples.
 * Rendering from the same document keeps the page and /openapi.json from drifting apart.
 */

type Json = Record<string, unknown>;

function esc(s: unknown): string {
  return String(s ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

const EXAMPLES: Record<string, string> = {
  "/v1/classify":
    `curl -s -H 'Content-Type: image/png' --data-binary @shirt.png http://HOST/v1/classify
curl -s -F a=@boot.jpg -F b=@bag.png http://HOST/v1/classify
curl -s -H 'Content-Type: application/json' -d '{"pixels": [[0, 0, ... 784 values]]}' http://HOST/v1/classify`,
  "/v1/latent":
    `curl -s -H 'Content-Type: image/jpeg' --data-binary @photo.jpg 'http://HOST/v1/latent?samples=4&seed=1'`,
  "/v1/reconstruct":
    `curl -s -H 'Content-Type: image/png' --data-binary @shirt.png -o recon.png http://HOST/v1/reconstruct`,
  "/v1/decode":
    `curl -s -H 'Content-Type: application/json' -d '{"latent": [0, 0, 0, 0]}' -o decoded.png http://HOST/v1/decode`,
};

export function renderDocs(doc: Json, host = "localhost:8000"): string {
  const info = doc.info as Json;
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const sections: string[] = [];
  const toc: string[] = [];
  for (const [path, ops] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const id = `${method}-${path}`.replace(/[^a-z0-9]+/gi, "-");
      toc.push(
        `<li><a href="#${id}"><code>${method.toUpperCase()} ${esc(path)}</code></a> ${
          esc(op.summary)
        }</li>`,
      );
      const params = (op.parameters as Json[] | undefined) ?? [];
      const body = op.requestBody as Json | undefined;
      const responses = op.responses as Record<string, Json>;
      const parts = [
        `<section id="${id}"><h2><code>${method.toUpperCase()} ${esc(path)}</code></h2><p>${
          esc(op.summary)
        }</p>`,
      ];
      if (op.description) parts.push(`<p>${esc(op.description)}</p>`);
      if (params.length) {
        parts.push(
          "<h3>Query parameters</h3><table><tr><th>name</th><th>schema</th><th>meaning</th></tr>",
        );
        for (const p of params) {
          parts.push(
            `<tr><td><code>${esc(p.name)}</code></td><td><code>${
              esc(JSON.stringify(p.schema))
            }</code></td><td>${esc(p.description)}</td></tr>`,
          );
        }
        parts.push("</table>");
      }
      if (body) {
        parts.push(
          `<h3>Request body</h3>${body.description ? `<p>${esc(body.description)}</p>` : ""}<ul>`,
        );
        for (const [type, c] of Object.entries(body.content as Record<string, Json>)) {
          parts.push(
            `<li><code>${esc(type)}</code>${c.description ? ` — ${esc(c.description)}` : ""}</li>`,
          );
        }
        parts.push("</ul>");
      }
      parts.push("<h3>Responses</h3><table><tr><th>status</th><th>meaning</th></tr>");
      for (const [status, r] of Object.entries(responses)) {
        parts.push(`<tr><td>${esc(status)}</td><td>${esc(r.description)}</td></tr>`);
      }
      parts.push("</table>");
      if (EXAMPLES[path]) {
        parts.push(`<h3>Example</h3><pre>${esc(EXAMPLES[path].replaceAll("HOST", host))}</pre>`);
      }
      parts.push("</section>");
      sections.push(parts.join("\n"));
    }
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(info.title)} API</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45;color:#222}
code,pre{font-family:ui-monospace,monospace;font-size:.9em}pre{background:#f4f4f4;padding:.7rem;overflow-x:auto}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
section{border-top:1px solid #ddd;margin-top:1.5rem}
</style></head><body>
<h1>${esc(info.title)} API</h1>
<p>${esc(info.description)}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI ${esc(doc.openapi)}).</p>
<ul>${toc.join("\n")}</ul>
${sections.join("\n")}
</body></html>`;
}
