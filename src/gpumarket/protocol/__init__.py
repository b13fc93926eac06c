"""Wire models shared by every side of gpumarket: the single source of truth for the protocol.

Input models forbid unknown keys so a misspelt field is an error rather than a silent default.
This package imports nothing else of gpumarket's.
"""

from gpumarket.protocol.accounts import (
    Challenge,
    ChallengeRequest,
    Credential,
    RegisterRequest,
    Role,
)
from gpumarket.protocol.base import Money, from_micros, to_micros
from gpumarket.protocol.gpu import GpuInfo, GpuTelemetry, normalize_gpu_model
from gpumarket.protocol.jobs import (
    ConstraintMiss,
    GpuRequirement,
    InputFile,
    JobEvent,
    JobPage,
    JobSpec,
    JobView,
    LogLine,
    MatchExplanation,
    ProviderVerdict,
    Resources,
    VerificationMode,
)
from gpumarket.protocol.providers import (
    CPU_OFFER,
    Assignment,
    AssignmentBatch,
    FailureReport,
    Heartbeat,
    HeartbeatAck,
    HostResources,
    LogAppend,
    LogAppendAck,
    LogChunk,
    LogStream,
    Offer,
    OfferAsk,
    OutputUploadAck,
    ProviderView,
    ResultReport,
    StartedReport,
)
from gpumarket.protocol.states import TERMINAL_STATES, JobState
from gpumarket.protocol.units import SizeRange, parse_size_mb

__all__ = [
    "CPU_OFFER",
    "TERMINAL_STATES",
    "Assignment",
    "AssignmentBatch",
    "Challenge",
    "ChallengeRequest",
    "ConstraintMiss",
    "Credential",
    "FailureReport",
    "GpuInfo",
    "GpuRequirement",
    "GpuTelemetry",
    "Heartbeat",
    "HeartbeatAck",
    "HostResources",
    "InputFile",
    "JobEvent",
    "JobPage",
    "JobSpec",
    "JobState",
    "JobView",
    "LogAppend",
    "LogAppendAck",
    "LogChunk",
    "LogLine",
    "LogStream",
    "MatchExplanation",
    "Money",
    "Offer",
    "OfferAsk",
    "OutputUploadAck",
    "ProviderVerdict",
    "ProviderView",
    "RegisterRequest",
    "Resources",
    "ResultReport",
    "Role",
    "SizeRange",
    "StartedReport",
    "VerificationMode",
    "from_micros",
    "normalize_gpu_model",
    "parse_size_mb",
    "to_micros",
]
