"""The engine's per-layer pull events folded into the one figure a developer watches. The
events are the engine's own, recorded from a pull of two layers (one already held) from the
local registry the integration tests use."""

from __future__ import annotations

from typing import Any

import pytest

from gpumarket.provider.pulls import PullFailed, PullProgress

IMAGE = "127.0.0.1:5000/pulls/busybox:1"
RECORDED: list[dict[str, Any]] = [
    {"status": "Pulling from pulls/busybox", "id": "1"},
    {"status": "Already exists", "progressDetail": {}, "id": "aaaa"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "4151f86f8e68"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "bfa4c0c2996e"},
    {
        "status": "Downloading",
        "progressDetail": {"current": 557056, "total": 1500674},
        "id": "bfa4c0c2996e",
    },
    {
        "status": "Downloading",
        "progressDetail": {"current": 622592, "total": 1099671},
        "id": "4151f86f8e68",
    },
    {"status": "Verifying Checksum", "progressDetail": {}, "id": "4151f86f8e68"},
    {"status": "Download complete", "progressDetail": {}, "id": "4151f86f8e68"},
    {
        "status": "Extracting",
        "progressDetail": {"current": 32768, "total": 1099671},
        "id": "4151f86f8e68",
    },
    {"status": "Pull complete", "progressDetail": {}, "id": "4151f86f8e68"},
    {
        "status": "Downloading",
        "progressDetail": {"current": 1500674, "total": 1500674},
        "id": "bfa4c0c2996e",
    },
    {"status": "Download complete", "progressDetail": {}, "id": "bfa4c0c2996e"},
    {"status": "Pull complete", "progressDetail": {}, "id": "bfa4c0c2996e"},
    {"status": "Digest: sha256:1d9c34ff"},
    {"status": "Status: Downloaded newer image for " + IMAGE},
]


def progress_after(events: int) -> tuple[int, int | None, str]:
    pull = PullProgress(IMAGE)
    for event in RECORDED[:events]:
        pull.feed(event)
    snap = pull.snapshot()
    return snap.done_bytes, snap.total_bytes, snap.detail


def test_layers_add_up_to_one_bar_whose_total_grows_as_sizes_become_known() -> None:
    assert progress_after(4) == (0, None, f"{IMAGE} (0/2 layers)")  # a held layer is no part
    assert progress_after(5) == (557056, 1500674, f"{IMAGE} (0/2 layers)")
    assert progress_after(6) == (557056 + 622592, 1500674 + 1099671, f"{IMAGE} (0/2 layers)")
    # a finished download counts whole; extraction bytes are not download bytes
    assert progress_after(9) == (557056 + 1099671, 2600345, f"{IMAGE} (1/2 layers)")
    assert progress_after(len(RECORDED)) == (2600345, 2600345, f"{IMAGE} (2/2 layers)")


def test_the_image_lines_and_warnings_are_not_layers() -> None:
    pull = PullProgress(IMAGE)
    pull.feed({"status": "some registry warning", "id": "WARNING"})
    pull.feed({"status": "Pulling from pulls/busybox", "id": "1"})
    assert pull.snapshot().detail == f"{IMAGE} (0/0 layers)"


def test_an_error_in_the_stream_stops_the_pull() -> None:
    pull = PullProgress(IMAGE)
    pull.feed(RECORDED[2])
    with pytest.raises(PullFailed, match="unexpected EOF"):
        pull.feed({"errorDetail": {"message": "unexpected EOF"}, "error": "unexpected EOF"})
