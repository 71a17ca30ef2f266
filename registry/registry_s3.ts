/**
 * The model registry on S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, GCS
 * interop): the same layout as the directory registry under `s3://<bucket>/<prefix>/`, i.e.
 * `<name>/<version>/manifest.json` plus the files it lists, `<name>/CURRENT` (the active version
 * id) and `<name>/HISTORY`. A version counts only once its manifest.json exists: publishers
 * upload it after every other object (registry/registry_s3_write.ts). This module is the
 * storage seam: parsing the URL, a client configured from the standard AWS environment
 * variables, and small typed object operations; both the publisher and the server use it.
 * The client is @aws-sdk/client-s3 (signing, retries, checksums are its business).
 */
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { CURRENT_FILE, RegistryError } from "./registry.ts";
import { parseS3Url, type S3Location, SAFE_ID } from "./s3_location.ts";

/**
 * A client from the standard AWS variables: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN (or any other source of the SDK's default chain), AWS_REGION or
 * AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for a non-AWS service.
 * A custom endpoint gets path-style addressing, which MinIO and most emulators need;
 * AWS_S3_FORCE_PATH_STYLE=false turns it off.
 */
export function s3ClientFromEnv(env: Record<string, string | undefined>): S3Client {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const pathStyle = env.AWS_S3_FORCE_PATH_STYLE
    ? !/^(0|false|no)$/i.test(env.AWS_S3_FORCE_PATH_STYLE)
    : endpoint !== undefined;
  const key = env.AWS_ACCESS_KEY_ID;
  const secret = env.AWS_SECRET_ACCESS_KEY;
  return new S3Client({
    endpoint,
    forcePathStyle: pathStyle,
    // The SDK refuses to start without a region; emulators accept any.
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
    credentials: key && secret
      ? { accessKeyId: key, secretAccessKey: secret, sessionToken: env.AWS_SESSION_TOKEN }
      : undefined,
  });
}

export interface S3Object {
  bytes: Uint8Array;
  etag: string;
}

function statusOf(e: unknown): number | undefined {
  return e instanceof S3ServiceException ? e.$metadata?.httpStatusCode : undefined;
}

/** What failed, on which object, and S3's reason. */
export class S3RegistryError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = "S3RegistryError";
  }
}

/** A registry in one bucket under one prefix: typed gets, puts, lists and deletes of its keys. */
export class S3Registry {
  readonly location: S3Location;
  #conditionalWrites = true;
  constructor(readonly url: string, readonly client: S3Client) {
    this.location = parseS3Url(url);
  }

  /** The full key of a registry-relative path, e.g. "fashion-vae/CURRENT". */
  key(rel: string): string {
    return this.location.prefix ? `${this.location.prefix}/${rel}` : rel;
  }

  /** `s3://bucket/prefix/rel`, for messages. */
  where(rel: string): string {
    return `s3://${this.location.bucket}/${this.key(rel)}`;
  }

  #fail(action: string, rel: string, e: unknown): never {
    const status = statusOf(e);
    const why = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    throw new S3RegistryError(`Cannot ${action} ${this.where(rel)}: ${why}`, status);
  }

  /** The object's bytes and ETag, or null when it does not exist. */
  async get(rel: string): Promise<S3Object | null> {
    try {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(rel) }),
      );
      return { bytes: await r.Body!.transformToByteArray(), etag: r.ETag ?? "" };
    } catch (e) {
      if (statusOf(e) === 404) return null;
      this.#fail("read", rel, e);
    }
  }

  async getText(rel: string): Promise<string | null> {
    const o = await this.get(rel);
    return o === null ? null : new TextDecoder().decode(o.bytes);
  }

  /**
   * Writes an object. `ifNoneMatch: "*"` (create only) and `ifMatch` (replace only that ETag)
   * are S3's conditional writes; a 412 from a service that honours them is returned as false.
   */
  async put(
    rel: string,
    body: Uint8Array | string,
    cond: { ifNoneMatch?: "*"; ifMatch?: string } = {},
  ): Promise<{ ok: boolean; etag: string }> {
    const conditional = this.#conditionalWrites && (cond.ifNoneMatch || cond.ifMatch);
    try {
      const r = await this.client.send(
        new PutObjectCommand({
          Bucket: this.location.bucket,
          Key: this.key(rel),
          Body: typeof body === "string" ? new TextEncoder().encode(body) : body,
          IfNoneMatch: conditional ? cond.ifNoneMatch : undefined,
          IfMatch: conditional ? cond.ifMatch : undefined,
        }),
      );
      return { ok: true, etag: r.ETag ?? "" };
    } catch (e) {
      const status = statusOf(e);
      if (status === 412 || status === 409) return { ok: false, etag: "" };
      if (conditional && status === 501) {
        // A store without conditional writes: the lock's read-back is what protects it then.
        this.#conditionalWrites = false;
        return await this.put(rel, body);
      }
      this.#fail("write", rel, e);
    }
  }

  /** Every key below `relPrefix` (registry-relative, without the prefix) with size and ETag. */
  async list(relPrefix: string): Promise<{ rel: string; size: number; etag: string }[]> {
    const out: { rel: string; size: number; etag: string }[] = [];
    const strip = this.key("").length;
    for await (const r of this.#pages(relPrefix, undefined)) {
      for (const o of r.Contents ?? []) {
        out.push({ rel: o.Key!.slice(strip), size: o.Size ?? 0, etag: o.ETag ?? "" });
      }
    }
    return out;
  }

  /** Deletes the given registry-relative keys (missing ones are not an error). */
  async delete(rels: string[]): Promise<void> {
    for (let i = 0; i < rels.length; i += 1000) {
      const chunk = rels.slice(i, i + 1000);
      try {
        const r = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.location.bucket,
            Delete: { Objects: chunk.map((rel) => ({ Key: this.key(rel) })), Quiet: true },
          }),
        );
        if (r.Errors?.length) {
          const e = r.Errors[0];
          throw new Error(`${e.Key}: ${e.Code} ${e.Message}`);
        }
      } catch (e) {
        this.#fail("delete objects under", chunk[0], e);
      }
    }
  }

  /** The version CURRENT of `name` names, or null when there is no CURRENT object. */
  async readCurrent(name: string): Promise<string | null> {
    const text = await this.getText(`${name}/${CURRENT_FILE}`);
    if (text === null) return null;
    const version = text.trim();
    if (!SAFE_ID.test(version)) {
      throw new RegistryError(
        "bad-current",
        `${this.where(`${name}/${CURRENT_FILE}`)} must hold one version id ([A-Za-z0-9._-]), got ${
          JSON.stringify(text.slice(0, 80))
        }`,
      );
    }
    return version;
  }

  /** Version ids of `name` and whether each has its manifest (i.e. is complete). */
  async versions(name: string): Promise<{ version: string; hasManifest: boolean }[]> {
    const seen = new Map<string, boolean>();
    for (const o of await this.list(`${name}/`)) {
      const parts = o.rel.slice(name.length + 1).split("/");
      if (parts.length < 2 || !SAFE_ID.test(parts[0])) continue; // CURRENT, HISTORY, .lock
      seen.set(parts[0], (seen.get(parts[0]) ?? false) || parts[1] === "manifest.json");
    }
    return [...seen].sort(([a], [b]) => (a < b ? -1 : 1)).map(([version, hasManifest]) => ({
      version,
      hasManifest,
    }));
  }

  /** The pages of a listing below `relPrefix` (with `delimiter`: its common prefixes too). */
  async *#pages(relPrefix: string, delimiter: string | undefined) {
    let token: string | undefined;
    do {
      let r;
      try {
        r = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.location.bucket,
            Prefix: this.key(relPrefix),
            Delimiter: delimiter,
            ContinuationToken: token,
          }),
        );
      } catch (e) {
        this.#fail("list", relPrefix, e);
      }
      yield r;
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  /** Model names: first-level prefixes holding a CURRENT object. */
  async models(): Promise<string[]> {
    const names: string[] = [];
    for await (const r of this.#pages("", "/")) {
      for (const p of r.CommonPrefixes ?? []) {
        const n = p.Prefix!.slice(this.key("").length).replace(/\/$/, "");
        if (SAFE_ID.test(n) && (await this.get(`${n}/${CURRENT_FILE}`)) !== null) names.push(n);
      }
    }
    return names.sort();
  }

  /** `name` when given (checked), else the registry's only model. */
  async pickModel(name: string | undefined): Promise<string> {
    if (name !== undefined) {
      if (!SAFE_ID.test(name)) {
        throw new RegistryError("no-model", `Model name "${name}" is not a plain name`);
      }
      return name;
    }
    const names = await this.models();
    if (names.length === 1) return names[0];
    throw new RegistryError(
      names.length ? "ambiguous-model" : "no-model",
      names.length
        ? `Registry ${this.url} holds ${names.length} models (${names.join(", ")}); name one`
        : `Registry ${this.url} holds no model with a CURRENT object`,
    );
  }
}
