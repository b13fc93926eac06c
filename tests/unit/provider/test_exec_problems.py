"""A command the image cannot run is named in the developer's terms, from whichever side saw
it: the engine refusing to start the container, or the container's init failing to exec."""

from __future__ import annotations

import pytest

from gpumarket.provider.executor import _exec_problem

ENGINE = (
    "failed to create shim task: OCI runtime create failed: runc create failed: unable to start "
    "container process: exec: {}: unknown"
)


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (
            ENGINE.format('"python": executable file not found in $PATH'),
            "'python' is not on the image's PATH",
        ),
        (ENGINE.format('"/nope": stat /nope: no such file or directory'), "'/nope' does not exist"),
        (ENGINE.format('"/etc/passwd": permission denied'), "'/etc/passwd' is not an executable"),
        (
            "[FATAL tini (7)] exec python failed: No such file or directory\n",
            "'python' is not on the image's PATH",
        ),
        (
            "[FATAL tini (7)] exec /opt/run.sh failed: No such file or directory",
            "'/opt/run.sh' does not exist",
        ),
        (
            "[FATAL tini (7)] exec /etc/passwd failed: Permission denied",
            "'/etc/passwd' is not an executable",
        ),
    ],
)
def test_exec_failures_are_named(message: str, problem: str) -> None:
    assert (_exec_problem(message) or "").startswith(problem)


def test_other_failures_are_not_taken_for_exec_ones() -> None:
    assert _exec_problem("error mounting /outputs: not a directory") is None
    assert _exec_problem("Traceback (most recent call last): FileNotFoundError") is None
