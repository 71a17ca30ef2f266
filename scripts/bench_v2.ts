/**
 * /v2 infer against /v1/classify on the same image, same server, same connections: one
 * service process (serve/main.ts on the default model unless --bundle), wrk at --connections
 * (32) on loopback, each case in --rounds interleaved rounds of --duration seconds, medians
 * printed with the median of the per-round V2/V1 ratios. Cases: raw pixels (/v1 octet-stream vs /v2 UINT8 via the
 * binary extension), a PNG (/v1 image/png vs /v2 BYTES via the binary extension), and /v2 FP32
 * as plain JSON (784 numbers, for reference). Every response must be a 200.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCommandFlags } from "../common/flags.ts";
import { encodeGreyPng } from "../common/image_codec.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { resolveActive } from "../registry/registry.ts";
import { binaryMessage, writeBytesElements } from "../serve/v2/binary.ts";
import { startServer } from "../testkit/server_process.ts";
import { imageAt, readTestImages } from "../testkit/test_images.ts";
import { runScript } from "./_cli.ts";
import { IMAGE_SIZE } from "../common/labels.ts";

const FLAGS = {
  registry: { type: "string", default: "models", help: "registry whose CURRENT bundle is served" },
  bundle: { type: "string", help: "serve this bundle instead" },
  backend: { type: "string", default: "native", help: "server --backend" },
  connections: { type: "int", default: 32, help: "wrk connections" },
  duration: { type: "int", default: 5, help: "wrk seconds per case and round" },
  rounds: { type: "int", default: 3, help: "interleaved rounds (medians are reported)" },
  wrk: { type: "string", default: "/usr/bin/wrk", help: "wrk binary" },
} as const;
const USAGE = "Usage: npx deno run -A scripts/bench_v2.ts [flags]";

interface Case {
  name: string;
  path: string;
  body: Uint8Array;
  headers: Record<string, string>;
}

function cases(model: string, px: Uint8Array): Case[] {
  const png = encodeGreyPng(px, IMAGE_SIZE, IMAGE_SIZE);
  const infer = `/v2/models/${model}/infer`;
  const binary = (datatype: string, shape: number[], raw: Uint8Array) => {
    const header = {
      inputs: [{ name: "image", datatype, shape, parameters: { binary_data_size: raw.length } }],
    };
    return binaryMessage(header, [raw]);
  };
  const fp32 = JSON.stringify({
    inputs: [{
      name: "image",
      datatype: "FP32",
      shape: [1, 784],
      data: Array.from(normalizePixels(px)),
    }],
  });
  return [
    {
      name: "v1 raw pixels",
      path: "/v1/classify",
      body: px,
      headers: { "Content-Type": "application/octet-stream" },
    },
    { name: "v2 UINT8 binary", path: infer, ...binary("UINT8", [1, 784], px) },
    { name: "v1 PNG", path: "/v1/classify", body: png, headers: { "Content-Type": "image/png" } },
    {
      name: "v2 BYTES PNG binary",
      path: infer,
      ...binary("BYTES", [1], writeBytesElements([png])),
    },
    {
      name: "v2 FP32 JSON",
      path: infer,
      body: new TextEncoder().encode(fp32),
      headers: { "Content-Type": "application/json" },
    },
  ];
}

async function wrk(
  bin: string,
  url: string,
  c: Case,
  dir: string,
  connections: number,
  seconds: number,
) {
  const bodyPath = join(dir, `${c.name.replaceAll(" ", "_")}.bin`);
  const lua = bodyPath + ".lua";
  await writeFile(bodyPath, c.body);
  await writeFile(
    lua,
    [
      `local f = assert(io.open(${JSON.stringify(bodyPath)}, "rb"))`,
      `wrk.method = "POST"`,
      `wrk.body = f:read("*all")`,
      `f:close()`,
      ...Object.entries(c.headers).map(([k, v]) =>
        `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`
      ),
    ].join("\n"),
  );
  const out = await new Deno.Command(bin, {
    args: [
      "-t",
      "2",
      "-c",
      String(connections),
      "-d",
      `${seconds}s`,
      "--timeout",
      "5s",
      "-s",
      lua,
      url + c.path,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
  const non2xx = Number(text.match(/Non-2xx or 3xx responses:\s+(\d+)/)?.[1] ?? 0);
  if (non2xx > 0) throw new Error(`${c.name}: ${non2xx} responses were not 2xx`);
  return Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function main(args: string[]): Promise<number> {
  const f = parseCommandFlags(args, FLAGS, USAGE, {});
  if (!f) return 0;
  const bundle = (f.bundle as string | undefined) ??
    (await resolveActive(f.registry as string)).dir;
  const test = readTestImages(1);
  if (!test) {
    throw new Error(
      "Fashion-MNIST test images are missing (apt-get install -y dataset-fashion-mnist)",
    );
  }
  const px = imageAt(test, 0).slice();
  const server = await startServer(["--bundle", bundle, "--backend", f.backend as string]);
  const tmp = await mkdtemp(join(tmpdir(), "bench-v2-"));
  try {
    const model = (await (await fetch(`${server.url}/v1/models`)).json()).active.name;
    const all = cases(model, px);
    for (const c of all) {
      const res = await fetch(server.url + c.path, {
        method: "POST",
        headers: c.headers,
        body: c.body.slice(),
      });
      if (res.status !== 200) throw new Error(`${c.name}: HTTP ${res.status} ${await res.text()}`);
      await res.body?.cancel();
    }
    const rps = new Map<string, number[]>(all.map((c) => [c.name, []]));
    for (let r = 0; r < (f.rounds as number); r++) {
      for (const c of all) {
        rps.get(c.name)!.push(
          await wrk(
            f.wrk as string,
            server.url,
            c,
            tmp,
            f.connections as number,
            f.duration as number,
          ),
        );
      }
    }
    const m = (name: string) => median(rps.get(name)!);
    console.log(
      `POST one 28x28 Fashion-MNIST image, bundle ${bundle}, --backend ${f.backend}, wrk -c ${f.connections}, ${f.rounds} x ${f.duration}s interleaved, loopback, ${navigator.hardwareConcurrency} CPUs (shared)`,
    );
    console.log("| case | median req/s | rounds | median of per-round V2/V1 |\n|---|---|---|---|");
    for (const c of all) {
      const base = rps.get(c.name.includes("PNG") ? "v1 PNG" : "v1 raw pixels")!;
      // Paired within each round: the machine's load drifts between rounds, less within one.
      const ratios = rps.get(c.name)!.map((x, r) => x / base[r]);
      const ratio = c.name.startsWith("v2") ? `${(median(ratios) * 100).toFixed(1)}%` : "";
      const runs = rps.get(c.name)!.map((x) => x.toFixed(0)).join(", ");
      console.log(`| ${c.name} | ${m(c.name).toFixed(0)} | ${runs} | ${ratio} |`);
    }
  } finally {
    await server.stop();
    await rm(tmp, { recursive: true });
  }
  return 0;
}

if (import.meta.main) await runScript("bench_v2", USAGE, FLAGS, main);
