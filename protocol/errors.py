"""Error codes shared by the backend and every client.

Each error carries a code (stable, machine-readable), a message (what went wrong) and a hint
(what the user can do about it). docs/protocol.md lists every code. A code this side does not
know (a newer peer's) is kept as it came, never refused: see ErrorCode._missing_.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # Framing and envelope
    BAD_MESSAGE = "bad_message"  # malformed multipart / envelope fields
    BAD_JSON = "bad_json"  # envelope frame is not UTF-8 JSON object
    UNKNOWN_TYPE = "unknown_type"  # message type not in the protocol
    VERSION_MISMATCH = "version_mismatch"  # protocol versions differ (both named)
    SHAPE_MISMATCH = "shape_mismatch"  # declared dtype/shape does not match the buffer
    MESSAGE_TOO_LARGE = "message_too_large"
    # Jobs
    UNKNOWN_JOB = "unknown_job"
    UNKNOWN_JOB_KIND = "unknown_job_kind"
    UNKNOWN_SCENE = "unknown_scene"
    QUEUE_FULL = "queue_full"
    CANCELLED = "cancelled"
    INTERRUPTED = (
        "interrupted"  # the backend stopped (crash, kill, shutdown) while it was queued/running
    )
    BAD_PARAMS = "bad_params"  # a parameter is missing, of the wrong type or out of range
    BAD_IMAGE = "bad_image"  # undecodable, too small, too large, wrong channel count
    BAD_CAMERA = "bad_camera"  # non-rigid c2w, bad intrinsics, no animation
    NOT_IMPLEMENTED = "not_implemented"
    NOT_READY = "not_ready"  # fetch_frames asked for frames the job has not written yet
    # Access and budgets (docs/protocol.md, "Threat model and limits")
    BAD_BIND = (
        "bad_bind"  # a listen address that is not one literal address, or keyless off loopback
    )
    UNSAFE_PATH = "unsafe_path"  # a folder or key file others can read/write, or not ours
    NOT_AUTHORIZED = "not_authorized"  # a client key removed from the allow-list while connected
    QUOTA_EXCEEDED = "quota_exceeded"  # this client already has its share of the queue
    OVER_BUDGET = "over_budget"  # a job's pixels (frames x width x height) over the server's budget
    DISK_FULL = "disk_full"  # the output folder's disk has less free space than the job needs
    TIME_LIMIT = "time_limit"  # a job ran past the server's wall-time limit
    POOL_INSECURE = "pool_insecure"  # the Ray cluster does not require token authentication
    # Models and pipeline
    PRIOR_FAILED = "prior_failed"  # reconstruction failed; message names the cause
    WEIGHTS_MISSING = "weights_missing"
    WEIGHTS_INVALID = "weights_invalid"  # wrong keys / shapes / format
    OUT_OF_MEMORY = "out_of_memory"
    INTERNAL = "internal"
    # Client side only
    BACKEND_DEAD = "backend_dead"  # heartbeats missed
    TIMEOUT = "timeout"

    @classmethod
    def _missing_(cls, value: object) -> ErrorCode | None:
        """A code from a newer peer: an unnamed member that keeps its text, so clients show the
        message and hint and treat it as a failure instead of crashing on ValueError."""
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNRECOGNIZED"
        member._value_ = value
        return member

    @property
    def known(self) -> bool:
        return self._name_ != "UNRECOGNIZED"


class VideoSceneError(Exception):
    """An error with a code, a message and a hint; the same shape travels on the wire."""

    def __init__(self, code: ErrorCode | str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message, "hint": self.hint}

    @classmethod
    def from_dict(cls, data: object) -> VideoSceneError:
        """The error in a peer's reply body; tolerant of missing or mistyped fields."""
        fields = data if isinstance(data, dict) else {}
        code, message, hint = (fields.get(key) for key in ("code", "message", "hint"))
        return cls(
            code if isinstance(code, str) and code else ErrorCode.INTERNAL,
            "" if message is None else str(message),
            "" if hint is None else str(hint),
        )

    def __str__(self) -> str:
        return f"[{self.code.value}] {self.message}" + (
            f" (hint: {self.hint})" if self.hint else ""
        )
