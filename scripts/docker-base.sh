#!/usr/bin/env bash
# Build an offline base image for the sandbox Dockerfile: Debian bookworm (python3 = 3.11) made
# with debootstrap from the machine's own apt mirror, imported with `docker import`. Needed where
# no container registry is reachable (docs/DESIGN.md §5); elsewhere python:3.11-slim does the job.
#
#   scripts/docker-base.sh [IMAGE]      # default evocade-base:bookworm; skipped if it exists
#   FORCE=1 scripts/docker-base.sh      # rebuild anyway
#
# Then: evocade sandbox build-image --base-image evocade-base:bookworm
# (or: docker build --build-arg BASE_IMAGE=evocade-base:bookworm -t evocade-sandbox:latest .)
# Needs root (debootstrap) and a running engine (scripts/dockerd.sh start; DOCKER_HOST set).
set -euo pipefail

IMAGE="${1:-evocade-base:bookworm}"
SUITE="${SUITE:-bookworm}"
PACKAGES="python3,python3-venv,python3-pip,libseccomp2,ca-certificates"
export DOCKER_HOST="${DOCKER_HOST:-unix:///run/evocade-docker/docker.sock}"

say() { echo "docker-base.sh: $*" >&2; }

if ! docker version >/dev/null 2>&1; then
  say "no Docker engine answers at $DOCKER_HOST; start one: eval \"\$(scripts/dockerd.sh start)\""
  exit 1
fi
if [ -z "${FORCE:-}" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "$IMAGE exists; skipping (FORCE=1 rebuilds it)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "debootstrap needs root"
  exit 1
fi

mirror() {
  # The first Debian (non-security) archive in the apt sources: deb822 .sources or one-line.
  local uri
  uri="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' \
    | grep -E '/debian/?$' | head -n 1 || true)"
  if [ -z "$uri" ]; then
    uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; break } }' \
      | grep -E '/debian/?$' | head -n 1 || true)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap (apt) ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

MIRROR="${MIRROR:-$(mirror)}"
ROOT="$(mktemp -d /var/tmp/evocade-base.XXXXXX)"
trap 'rm -rf "$ROOT"' EXIT
say "debootstrap $SUITE from $MIRROR into $ROOT (about a minute) ..."
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 \
  || { tail -n 30 "$ROOT.log" >&2; rm -f "$ROOT.log"; exit 1; }
rm -f "$ROOT.log"

# What a container never needs: package caches and lists, documentation, locales.
rm -rf "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/* \
  "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
  "$ROOT"/usr/share/locale/* "$ROOT"/tmp/* "$ROOT"/var/tmp/*
# apt inside the image (a later `RUN apt-get`) uses the same mirror.
echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"
# The image trusts the certificate authorities this machine added to its own store (e.g. an
# egress proxy's), so `pip install` in the Dockerfile reaches PyPI the way the host does.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  chroot "$ROOT" update-ca-certificates >/dev/null 2>&1
fi

say "importing as $IMAGE ..."
tar --numeric-owner -C "$ROOT" -c . | docker import --message "debootstrap $SUITE minbase" - "$IMAGE" >/dev/null
say "done: $IMAGE"
