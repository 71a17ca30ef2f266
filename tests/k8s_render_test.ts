/**
 * deploy/k8s against the app: renders the kustomization with `kubectl kustomize` (no cluster
 * needed) and checks that what Kubernetes would run fits what the code and the Containerfile
 * provide: the probe paths answer as the probes expect (readiness 503 until a model serves),
 * the probe and Service ports are the port the service listens on, the image is the one the
 * Containerfile builds, every environment variable is one the service reads and the ConfigMap
 * parses into a valid configuration, and the pod runs as the image's non-root user with a
 * read-only root file system and a writable /tmp.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { AWS_ENV_VARS } from "../registry/s3_location.ts";
import { createApp } from "../serve/app.ts";
import { ADMIN_TOKEN_ENV, defaultConfig, parseConfig } from "../serve/config.ts";
import { FLAG_SPECS } from "../serve/config_flags.ts";
import { ModelSlot } from "../serve/inference/mod.ts";
import { ServiceMetrics } from "../serve/metrics.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";

const root = (p: string) => new URL(`../${p}`, import.meta.url).pathname;

function kubectl(): string {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat("/usr/bin")) {
    try {
      if (Deno.statSync(`${dir}/kubectl`).isFile) return `${dir}/kubectl`;
    } catch { /* not here */ }
  }
  throw new Error(
    "kubectl is not installed: the kustomize render test needs it (.ci/run installs it)",
  );
}

// deno-lint-ignore no-explicit-any
type Doc = any;

async function render(): Promise<Doc[]> {
  const out = await new Deno.Command(kubectl(), {
    args: ["kustomize", root("deploy/k8s")],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `kubectl kustomize deploy/k8s failed: ${err}`);
  return parseAllDocuments(new TextDecoder().decode(out.stdout)).map((d) => d.toJSON());
}

const docs = await render();
const one = (kind: string): Doc => {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `one ${kind} in the rendered manifests`);
  return found[0];
};
const deployment = one("Deployment");
const pod = deployment.spec.template.spec;
const container = pod.containers[0];
const configMap = one("ConfigMap");
const containerfile = Deno.readTextFileSync(root("Containerfile"));
const serveStage = containerfile.slice(containerfile.indexOf("AS serve"));

Deno.test("the rendered manifests hold every object the deployment needs", () => {
  for (const kind of ["Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]) one(kind);
  assert.ok(docs.filter((d) => d.kind === "Secret").length >= 1);
  const hpa = one("HorizontalPodAutoscaler");
  assert.equal(hpa.spec.scaleTargetRef.kind, "Deployment");
  assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
  assert.equal(hpa.spec.metrics[0].resource.name, "cpu");
  assert.equal(deployment.spec.replicas, undefined, "the HPA, not the Deployment, sets replicas");
  const labels = deployment.spec.template.metadata.labels;
  for (
    const sel of [
      one("Service").spec.selector,
      one("PodDisruptionBudget").spec.selector.matchLabels,
    ]
  ) {
    for (const [k, v] of Object.entries(sel)) {
      assert.equal(labels[k], v, `selector ${k}=${v} matches the pods`);
    }
  }
  assert.ok(container.resources.requests.cpu && container.resources.limits.memory);
});

Deno.test("probe paths answer as the probes expect: /healthz while loading, /readyz once serving", async () => {
  const probes = ["startupProbe", "readinessProbe", "livenessProbe"].map((p) =>
    container[p].httpGet
  );
  assert.deepEqual(probes.map((p) => p.path), ["/healthz", "/readyz", "/healthz"]);
  const loading = createApp({
    slot: new ModelSlot(null, "loading"),
    config: defaultConfig(),
    metrics: new ServiceMetrics(),
    log: () => {},
  });
  assert.equal((await loading.request("/healthz")).status, 200);
  assert.equal((await loading.request("/readyz")).status, 503);
  const served = await serveBundle("native");
  try {
    for (const p of probes) assert.equal((await served.app.request(p.path)).status, 200, p.path);
  } finally {
    await served.slot.close();
  }
});

Deno.test("probe, container and Service ports are the port the service listens on", () => {
  const ports = Object.fromEntries(container.ports.map((p: Doc) => [p.name, p.containerPort]));
  for (const p of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    const port = container[p].httpGet.port;
    assert.ok(
      port in ports || Object.values(ports).includes(port),
      `${p} port ${port} is declared`,
    );
  }
  const listen = Number(configMap.data.PORT ?? FLAG_SPECS.port.default);
  assert.equal(ports.http, listen);
  assert.match(serveStage, new RegExp(`EXPOSE ${listen}\\b`));
  assert.equal(one("Service").spec.ports[0].targetPort, "http");
});

Deno.test("the image is the one the Containerfile builds, run as its non-root user", () => {
  const title = /LABEL org\.opencontainers\.image\.title="([^"]+)"/.exec(serveStage)?.[1];
  assert.ok(title, "the serve stage names its image");
  const repo = container.image.split(":")[0];
  assert.equal(repo.split("/").pop(), title, `image ${container.image}`);
  const smoke = Deno.readTextFileSync(root("scripts/container_smoke.sh"));
  assert.match(smoke, new RegExp(`IMAGE:-[^}]*/${title}:`));
  const uid = Number(/^USER (\d+)/m.exec(serveStage)?.[1]);
  assert.equal(pod.securityContext.runAsUser, uid);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  // The entrypoint may write only below /tmp, and the pod mounts a writable volume there.
  assert.match(serveStage, /--allow-write=\/tmp"/);
  const tmp = container.volumeMounts.find((m: Doc) => m.mountPath === "/tmp");
  assert.ok(pod.volumes.find((v: Doc) => v.name === tmp?.name)?.emptyDir, "an emptyDir on /tmp");
  assert.ok(configMap.data.CACHE_DIR.startsWith("/tmp/"));
});

Deno.test("every environment variable is one the service reads, and the ConfigMap parses", () => {
  const flagEnv = new Set<string>(
    Object.values(FLAG_SPECS).map((s) => (s as { env?: string }).env).filter((e) =>
      e !== undefined
    ) as string[],
  );
  const known = new Set([...flagEnv, ...AWS_ENV_VARS, ADMIN_TOKEN_ENV]);
  const names = [
    ...Object.keys(configMap.data),
    ...(container.env ?? []).map((e: Doc) => e.name),
    ...docs.filter((d) => d.kind === "Secret").flatMap((s) =>
      Object.keys(s.stringData ?? s.data ?? {})
    ),
  ];
  for (const n of names) {
    assert.ok(known.has(n), `${n} is a flag's env name, an AWS variable or the admin token`);
  }
  for (const ref of container.envFrom) {
    const name = ref.configMapRef?.name ?? ref.secretRef?.name;
    assert.ok(docs.some((d) => d.metadata.name === name), `envFrom ${name} exists`);
  }
  const { config } = parseConfig([], configMap.data);
  assert.equal(config!.registry, configMap.data.MODEL_REGISTRY);
  assert.equal(config!.model, configMap.data.MODEL_NAME);
  assert.equal(config!.pollMs, Number(configMap.data.POLL_MS));
  assert.equal(config!.port, Number(configMap.data.PORT));
});
