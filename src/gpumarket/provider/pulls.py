"""Turning the Docker engine's image-pull events into one figure a developer can watch.

The engine reports each layer on its own (``Downloading 3.1MB/48MB`` for one layer id,
``Already exists`` for another). A developer waiting on a job wants one bar: bytes fetched of
the bytes known so far. Layer sizes become known as their downloads start (the engine fetches
a few at a time), so the total grows during a pull; the layer count says how far along it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpumarket.protocol import PreparationProgress

_DONE = {"Download complete", "Verifying Checksum", "Extracting", "Pull complete"}
_LAYER = {"Pulling fs layer", "Waiting", "Downloading", "Already exists", *_DONE}


class PullFailed(Exception):
    """The engine reported an error in the middle of a pull's event stream (the docker SDK
    passes such events through instead of raising)."""


@dataclass
class _Layer:
    size: int | None = None
    fetched: int = 0
    complete: bool = False


@dataclass
class PullProgress:
    """Running totals of one image pull, fed with the engine's decoded JSON events."""

    image: str
    layers: dict[str, _Layer] = field(default_factory=dict)

    def feed(self, event: dict[str, Any]) -> None:
        """Account for one event; raises :class:`PullFailed` on an error event."""
        if event.get("error") or event.get("errorDetail"):
            detail = event.get("errorDetail") or {}
            raise PullFailed(str(event.get("error") or detail.get("message") or detail))
        layer_id = event.get("id")
        status = str(event.get("status") or "")
        if not layer_id or not (status in _LAYER or status.startswith("Retrying")):
            return  # the image's own lines ("Pulling from ...", "Digest: ...", warnings)
        if status == "Already exists":
            self.layers.pop(layer_id, None)  # nothing to fetch; not part of the bar
            return
        layer = self.layers.setdefault(layer_id, _Layer())
        detail = event.get("progressDetail") or {}
        if status == "Downloading":
            if detail.get("total"):
                layer.size = int(detail["total"])
            layer.fetched = int(detail.get("current") or layer.fetched)
        elif status in _DONE:
            if layer.size is not None:
                layer.fetched = layer.size
            layer.complete = True  # fetched; extraction follows

    def snapshot(self) -> PreparationProgress:
        """The pull so far, as the provider reports it."""
        sizes = [layer.size for layer in self.layers.values() if layer.size is not None]
        complete = sum(1 for layer in self.layers.values() if layer.complete)
        return PreparationProgress(
            phase="pulling_image",
            detail=f"{self.image} ({complete}/{len(self.layers)} layers)"[:300],
            done_bytes=sum(layer.fetched for layer in self.layers.values()),
            total_bytes=sum(sizes) if sizes else None,
        )
