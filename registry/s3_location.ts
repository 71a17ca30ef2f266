/**
 * Where an S3 registry lives: `s3://bucket[/prefix]` parsed and checked, and the names of the
 * standard AWS environment variables the client reads. Free of the AWS SDK (which takes a
 * second or more to import), so configuration parsing and the directory registry never load
 * it; registry/registry_s3.ts holds the client.
 */
import { VERSION_ID } from "../bundle/mod.ts";
import { RegistryError } from "./registry.ts";

/** Model names and version ids become key segments; the same rule as directory names. */
export const SAFE_ID = VERSION_ID;

export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing slash ("" for the bucket root). */
  prefix: string;
}

/** True for an s3:// registry location. */
export function isS3Registry(registry: string): boolean {
  return /^s3:\/\//i.test(registry);
}

/** Parses `s3://bucket[/prefix]`; throws RegistryError naming what is wrong. */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(url);
  if (!m) {
    throw new RegistryError("no-registry", `Registry ${url} is not an s3://bucket[/prefix] URL`);
  }
  const bucket = m[1];
  // S3's own bucket naming rule (lower case, digits, dots, hyphens, 3-63 characters).
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new RegistryError(
      "no-registry",
      `Registry ${url}: "${bucket}" is not a valid bucket name (3-63 of a-z 0-9 . -)`,
    );
  }
  const prefix = m[2].replace(/\/+$/, "");
  if (prefix !== "" && prefix.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new RegistryError(
      "no-registry",
      `Registry ${url}: prefix "${prefix}" has empty or dot segments`,
    );
  }
  return { bucket, prefix };
}

/** The environment variables s3ClientFromEnv reads (deploy/k8s may set any of them). */
export const AWS_ENV_VARS = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_S3",
  "AWS_S3_FORCE_PATH_STYLE",
];
