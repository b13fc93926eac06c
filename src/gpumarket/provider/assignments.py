"""The assignment of a job, kept in its work folder, and rebuilt for a restarted daemon.

A daemon killed while its job runs finds the container again at its next start, but the
assignment it was running lived only in memory. On an on-chain market the result claim needs
what the coordinator sent with it (the job's id in the contract and the escrow no claim may
exceed), so the assignment is saved as it arrived, and a daemon that finds no saved copy
rebuilds it from the coordinator's view of the job.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from pydantic import ValidationError

from gpumarket.protocol import Assignment, JobView
from gpumarket.protocol.pricing import run_cost_micros

log = logging.getLogger(__name__)

ASSIGNMENT_FILE = "assignment.json"


def save_assignment(job_dir: Path, assignment: Assignment) -> None:
    """Write ``assignment`` into the job's work folder (atomically: a daemon killed while
    writing leaves the previous copy or none, never half a file)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / ASSIGNMENT_FILE
    partial = path.with_suffix(".tmp")
    partial.write_text(assignment.model_dump_json())
    os.replace(partial, path)


def load_assignment(job_dir: Path, job_id: str) -> Assignment | None:
    """The saved assignment of ``job_id``; None when there is none or it cannot be read."""
    path = job_dir / ASSIGNMENT_FILE
    try:
        saved = Assignment.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, ValidationError) as exc:
        log.warning("ignoring the saved assignment of %s (%s): %s", job_id, path, exc)
        return None
    return saved if saved.job_id == job_id else None


def recovered_assignment(job: JobView, saved: Assignment | None) -> Assignment:
    """The assignment to finish ``job`` with after a restart: the saved one when it is this
    attempt's, else one rebuilt from the coordinator's view. Either way it carries the job's
    on-chain id and its escrow (the most a job of this spec can cost), without which no
    result could be claimed."""
    if saved is not None and saved.attempt == job.attempts:
        return saved
    return Assignment(
        job_id=job.id,
        spec=job.spec,
        gpu_uuids=job.gpu_uuids,
        price_per_hour=job.price_per_hour or 0,
        attempt=job.attempts,
        lease_expires_at=job.updated_at,
        chain_job_id=job.chain_job_id or (saved.chain_job_id if saved else None),
        max_payment_micros=saved.max_payment_micros if saved else run_cost_micros(job.spec),
    )
