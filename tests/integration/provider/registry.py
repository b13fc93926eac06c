"""A read-only Docker registry on 127.0.0.1, serving a local image, so the provider's image
pulls run for real here (no internet): the engine speaks the registry's V2 HTTP API to it,
fetches the manifest and the gzipped layers, and reports its usual per-layer progress.

The engine treats registries on 127.0.0.0/8 as insecure, so plain HTTP is enough. Blobs are
sent at ``bytes_per_second`` so a pull takes long enough to watch (and to outlast a short
acknowledgement deadline)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_fresh_image(client: docker.DockerClient, base: str, tag: str, size: int) -> str:
    """An image of ``base`` plus one layer of ``size`` random bytes, a layer no engine has
    yet, so pulling it downloads for real (its base layers are reported as already there)."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (
            ("Dockerfile", f"FROM {base}\nCOPY payload /payload\n".encode()),
            ("payload", os.urandom(size)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, pull=False)
    return tag


@dataclass
class ServedImage:
    """One image as the registry holds it: its manifest and blobs by digest."""

    manifest: bytes
    blobs: dict[str, bytes]
    layer_bytes: int


def serve_image(client: docker.DockerClient, source: str) -> ServedImage:
    """Export ``source`` from the local engine (``docker save``) as registry blobs."""
    saved = b"".join(client.images.get(source).save(named=True))
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:

        def read(name: str) -> bytes:
            member = archive.extractfile(name)
            assert member is not None, name
            return member.read()

        entry = json.loads(read("manifest.json"))[0]
        config = read(entry["Config"])
        layers = [gzip.compress(read(name), compresslevel=1) for name in entry["Layers"]]
    blobs = {_digest(blob): blob for blob in [config, *layers]}
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": _digest(config)},
            "layers": [
                {"mediaType": LAYER_TYPE, "size": len(layer), "digest": _digest(layer)}
                for layer in layers
            ],
        }
    ).encode()
    return ServedImage(manifest, blobs, sum(len(layer) for layer in layers))


@dataclass
class LocalRegistry:
    """The running registry: ``ref(name)`` is what to put in a job's ``image``."""

    host: str
    images: dict[str, ServedImage] = field(default_factory=dict)
    bytes_per_second: int = 1_000_000
    requests: list[str] = field(default_factory=list)

    def ref(self, name: str) -> str:
        """The image reference the engine pulls, e.g. ``127.0.0.1:5123/pulls/busybox:1``."""
        return f"{self.host}/{name}"


@contextmanager
def local_registry(
    client: docker.DockerClient,
    images: dict[str, str],
    bytes_per_second: int = 1_000_000,
    forget_sources: bool = False,
) -> Iterator[LocalRegistry]:
    """Serve ``images`` ({"repo:tag": local source image}) until the block ends, then remove
    whatever the engine pulled from it. ``forget_sources`` removes the source images from the
    engine once exported (for images made by :func:`build_fresh_image`)."""
    served = {name: serve_image(client, source) for name, source in images.items()}
    if forget_sources:  # the engine reuses layers it holds: only a forgotten one downloads
        for source in images.values():
            client.images.remove(source, force=True)
    registry = LocalRegistry("", served, bytes_per_second)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            registry.requests.append(self.path)
            if self.path.rstrip("/") == "/v2":
                self._send(200, b"{}", "application/json", body)
                return
            repo, kind, ref = _route(self.path)
            if kind == "manifests":  # by tag, then (as the engine asks next) by digest
                image = registry.images.get(f"{repo}:{ref}") or next(
                    (i for i in registry.images.values() if _digest(i.manifest) == ref), None
                )
                if image is None:
                    unknown = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}
                    self._send(404, json.dumps(unknown).encode(), "application/json", body)
                else:
                    self._send(200, image.manifest, MANIFEST_TYPE, body, _digest(image.manifest))
                return
            blob = next((i.blobs[ref] for i in registry.images.values() if ref in i.blobs), None)
            if kind != "blobs" or blob is None:
                self._send(404, b"{}", "application/json", body)
                return
            self._send(200, blob, "application/octet-stream", body, ref, throttle=True)

        def _send(
            self,
            status: int,
            data: bytes,
            content_type: str,
            body: bool,
            digest: str | None = None,
            throttle: bool = False,
        ) -> None:
            self.send_response(status)
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if digest:
                self.send_header("Docker-Content-Digest", digest)
            self.end_headers()
            if not body:
                return
            step = 32 * 1024
            for start in range(0, len(data), step):
                self.wfile.write(data[start : start + step])
                if throttle:
                    time.sleep(step / registry.bytes_per_second)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    registry.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
        for name in images:
            with suppress(docker.errors.ImageNotFound):
                client.images.remove(registry.ref(name), force=True)


def _route(path: str) -> tuple[str, str, str]:
    """``/v2/<repo>/<manifests|blobs>/<reference>`` split in three."""
    parts = path.split("?")[0].strip("/").split("/")
    return "/".join(parts[1:-2]), parts[-2], parts[-1]
