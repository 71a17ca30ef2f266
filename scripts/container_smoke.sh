#!/usr/bin/env bash
# Builds the serving image (Containerfile) with buildah, runs its entrypoint the way an
# orchestrator would (non-root, read-only root file system, a tmpfs on /tmp, flags from
# environment variables), waits for /readyz, runs the image's HEALTHCHECK command, classifies
# a test image on both onnxruntime backends, prints the image size (must be <= 300 MB) and
# removes everything it made. When the base image cannot be pulled (no container registry
# reachable), it builds it with debootstrap from the Debian mirror apt uses and tags it with
# the name the Containerfile expects. Needs root, buildah, debootstrap, curl and node.
#
#   scripts/container_smoke.sh      # KEEP=1 keeps the images it built; REUSE=1 reuses a built one
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/latent-edge:smoke}
SMOKE_PORT=${SMOKE_PORT:-18380}
MAX_MB=300
BASE=$(sed -n 's/^ARG BASE_IMAGE=//p' Containerfile)
SAMPLE=serve/demo/samples/7-sneaker.png
work=$(mktemp -d)
made_base=0
made_image=0
ctr=""
mnt=""
run_pid=""

say() { printf '[smoke] %s\n' "$*"; }

# SIGTERM to the service itself, as an orchestrator sends it (chroot isolation shares the
# host's PID namespace, and /healthz names the pid); buildah run then returns.
stop_service() {
  [ -n "$run_pid" ] || return 0
  local pid
  pid=$(curl -s -m 2 "http://127.0.0.1:$SMOKE_PORT/healthz" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p' || true)
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
  for _ in $(seq 50); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$run_pid" 2>/dev/null || true
  wait "$run_pid" 2>/dev/null || true
  run_pid=""
}

cleanup() {
  local rc=$?
  stop_service
  if [ -n "$mnt" ]; then umount "$mnt" 2>/dev/null || true; fi
  if [ -n "$ctr" ]; then buildah rm "$ctr" >/dev/null 2>&1 || true; fi
  if [ "${KEEP:-0}" != 1 ]; then
    if [ "$made_image" = 1 ]; then buildah rmi "$IMAGE" >/dev/null 2>&1 || true; fi
    if [ "$made_base" = 1 ]; then buildah rmi "$BASE" >/dev/null 2>&1 || true; fi
  fi
  rm -rf "$work"
  if [ $rc -eq 0 ]; then say "PASS (cleaned up)"; else say "FAIL (exit $rc; cleaned up)"; fi
}
trap cleanup EXIT

# The mirror apt is configured with (deb822 or one-line format).
apt_mirror() {
  local m=""
  m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}

ensure_base() {
  if buildah inspect --type image "$BASE" >/dev/null 2>&1; then
    say "base image $BASE is present"
    return
  fi
  if timeout 60 buildah pull -q "$BASE" >/dev/null 2>&1; then
    say "pulled $BASE"
    made_base=1
    return
  fi
  local suite mirror
  suite=$(sed -E 's/.*:([a-z]+)(-slim)?$/\1/' <<<"$BASE")
  mirror=$(apt_mirror)
  say "cannot pull $BASE: building it with debootstrap ($suite, minbase) from $mirror"
  debootstrap --variant=minbase "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; exit 1; }
  # What the official -slim images leave out as well.
  rm -rf "$work"/rootfs/usr/share/{doc,man,info,locale}/* "$work"/rootfs/var/cache/apt/* \
    "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/log/*
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  local c
  c=$(buildah from scratch)
  buildah add "$c" "$work/rootfs.tar" / >/dev/null
  buildah config --cmd /bin/bash \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
  buildah commit -q "$c" "$BASE" >/dev/null
  buildah rm "$c" >/dev/null
  rm -rf "$work/rootfs" "$work/rootfs.tar"
  made_base=1
  say "built $BASE ($(buildah images --format '{{.Size}}' "$BASE"))"
}

# One list from the image's configuration (a JS expression on `c`), one item per line.
image_config() {
  buildah inspect --type image "$IMAGE" |
    node -e "const c = JSON.parse(require('fs').readFileSync(0, 'utf8')); for (const a of $1) console.log(a)"
}

# One run of the image's entrypoint with extra environment; waits for /readyz, classifies.
run_once() {
  local backend=$1
  local -a entry envs
  mapfile -t entry < <(image_config 'c.OCIv1.config.Entrypoint')
  envs=(--env "PORT=$SMOKE_PORT" --env HOST=127.0.0.1 --env "BACKEND=$backend" --env POLL_MS=0)
  say "run (${backend}): ${entry[*]}"
  buildah run --isolation chroot --network host --mount type=tmpfs,destination=/tmp \
    "${envs[@]}" "$ctr" -- "${entry[@]}" >"$work/serve-$backend.log" 2>&1 &
  run_pid=$!
  local t0 ready=""
  t0=$(date +%s.%N)
  for _ in $(seq 300); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' -m 1 "http://127.0.0.1:$SMOKE_PORT/readyz")" = 200 ]; then
      ready=1
      break
    fi
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$ready" ]; then
    say "service did not become ready; its log:"
    cat "$work/serve-$backend.log"
    exit 1
  fi
  say "ready after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s:" \
    "$(grep -m1 '^Listening' "$work/serve-$backend.log")"
  local -a hc
  mapfile -t hc < <(image_config 'c.Docker.config.Healthcheck.Test.slice(1)')
  # In a second container of the image (buildah runs one command per container at a time),
  # sharing the host network as the service does.
  local hc_ctr
  hc_ctr=$(buildah from -q "$IMAGE")
  buildah run --isolation chroot --network host "${envs[@]}" "$hc_ctr" -- "${hc[@]}" ||
    { buildah rm "$hc_ctr" >/dev/null; say "HEALTHCHECK failed"; exit 1; }
  buildah rm "$hc_ctr" >/dev/null
  say "HEALTHCHECK (${hc[*]}): healthy"
  local body label
  body=$(curl -s -m 10 --data-binary "@$SAMPLE" -H 'content-type: image/png' \
    "http://127.0.0.1:$SMOKE_PORT/v1/classify")
  label=$(sed -n 's/.*"predictions":\[{"label":"\([^"]*\)".*"confidence":\([0-9.e-]*\).*/\1 (confidence \2)/p' <<<"$body")
  say "POST /v1/classify $SAMPLE -> ${label:-$body}"
  [[ "$label" == Sneaker* ]] || { say "expected Sneaker"; cat "$work/serve-$backend.log"; exit 1; }
  stop_service
  say "stopped: $(grep -c 'Shutting down' "$work/serve-$backend.log") graceful shutdown(s) logged"
}

[ -x node_modules/@deno/linux-x64-glibc/deno ] || npm ci --ignore-scripts
ensure_base
if [ "${REUSE:-0}" = 1 ] && buildah inspect --type image "$IMAGE" >/dev/null 2>&1; then
  say "reusing $IMAGE (REUSE=1)"
else
  say "building $IMAGE (buildah bud --isolation chroot --format docker)"
  t0=$(date +%s)
  buildah bud --isolation chroot --format docker --layers=false -q -t "$IMAGE" . >"$work/build.log" 2>&1 ||
    { tail -40 "$work/build.log"; exit 1; }
  made_image=1
  say "built in $(($(date +%s) - t0)) s"
fi

say "image size: $(buildah images --format '{{.Size}}' "$IMAGE") (buildah images)"
probe=$(buildah from -q "$IMAGE")
root=$(buildah mount "$probe")
size_mb=$(du -sm "$root" | cut -f1)
say "unpacked root file system: $size_mb MB (limit $MAX_MB MB)"
for banned in @tensorflow vega vega-lite playwright-core tsx esbuild; do
  [ ! -e "$root/app/node_modules/$banned" ] || { say "image holds node_modules/$banned"; exit 1; }
done
say "no tfjs, vega, playwright, tsx or esbuild inside; onnxruntime-node binaries:" \
  "$(cd "$root/app/node_modules/onnxruntime-node/bin" && find . -type f | sort | tr '\n' ' ')"
buildah umount "$probe" >/dev/null
buildah rm "$probe" >/dev/null
[ "$size_mb" -le "$MAX_MB" ] || { say "image is larger than $MAX_MB MB"; exit 1; }

ctr=$(buildah from -q "$IMAGE")
# Read-only root file system: the container's root is remounted read-only for the runs.
mnt=$(buildah mount "$ctr")
# buildah run bind-mounts these over the image's own; the mount points must exist beforehand.
touch "$mnt/etc/hosts" "$mnt/etc/resolv.conf" "$mnt/etc/hostname" "$mnt/run/.containerenv"
mount --bind "$mnt" "$mnt" && mount -o remount,bind,ro "$mnt"
say "root file system read-only; user $(buildah inspect --format '{{.OCIv1.Config.User}}' "$ctr")"
run_once native
run_once wasm
