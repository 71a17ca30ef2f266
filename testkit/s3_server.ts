/**
 * Fixtures for the S3 registry tests: a real S3-compatible server (s3rver, npm) on a free
 * loopback port, storing into a temporary directory, with one empty bucket; `env` holds the
 * standard AWS variables a client (registry/registry_s3.ts s3ClientFromEnv) or a child process
 * needs to reach it. And copies of the committed tiny bundles under new version ids, so a test
 * can publish as many distinct versions as it needs.
 */
import S3rver from "s3rver";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { s3ClientFromEnv, S3Registry } from "../registry/registry_s3.ts";

export interface TestS3 {
  endpoint: string;
  bucket: string;
  env: Record<string, string>;
  /** A registry client on `s3://<bucket>/<prefix>` (destroyed by close()). */
  registry(prefix?: string): S3Registry;
  close(): Promise<void>;
}

export async function startS3(bucket = "models"): Promise<TestS3> {
  const dir = await mkdtemp(join(tmpdir(), "s3rver-"));
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  // s3rver's fixed credentials.
  const env = {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
    AWS_REGION: "us-east-1",
  };
  const clients: S3Registry[] = [];
  return {
    endpoint,
    bucket,
    env,
    registry(prefix = "registry") {
      const r = new S3Registry(`s3://${bucket}/${prefix}`, s3ClientFromEnv(env));
      clients.push(r);
      return r;
    },
    async close() {
      for (const c of clients) c.client.destroy();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A copy of bundle `src` in a temp dir whose manifest says `version` (files unchanged). */
export async function bundleAs(src: string, version: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `bundle-${version}-`));
  await cp(src, dir, { recursive: true });
  const m = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
  m.version = version;
  await writeFile(join(dir, "manifest.json"), JSON.stringify(m, null, 2));
  return dir;
}
