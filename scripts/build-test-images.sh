#!/usr/bin/env bash
# Build the local images the tests, benchmarks and demo use (no registry can be reached):
#   gpumarket-test/busybox:1   busybox-static with the usual applets (~2 MB)
#   gpumarket-test/python:1    Debian minbase with python3 and NumPy (~320 MB, ~35 s)
# Idempotent: an image that exists is kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
need_pkg() { dpkg -s "$1" >/dev/null 2>&1 || { apt-get update -qq >/dev/null; apt-get install -y -qq "$1" >/dev/null; }; }

if ! docker image inspect gpumarket-test/busybox:1 >/dev/null 2>&1; then
  need_pkg busybox-static
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
  echo "nobody:x:65534:65534:nobody:/:/bin/sh" >> "$root/etc/passwd"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - gpumarket-test/busybox:1 >/dev/null
  rm -rf "$root"
  echo "built gpumarket-test/busybox:1" >&2
fi

if ! docker image inspect gpumarket-test/python:1 >/dev/null 2>&1; then
  need_pkg debootstrap
  mirror=$(bash "$here/debian-mirror.sh")
  root=$(mktemp -d)
  debootstrap --variant=minbase --include=python3-minimal,python3-numpy,libopenblas0-pthread bookworm "$root" "$mirror" >/tmp/debootstrap.log 2>&1
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
  tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c 'CMD ["python3"]' - gpumarket-test/python:1 >/dev/null
  rm -rf "$root"
  echo "built gpumarket-test/python:1" >&2
fi
