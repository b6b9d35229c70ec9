"""Errors a job raises to tell the lifecycle wrapper what to do next."""

from __future__ import annotations


class JobError(Exception):
    """Base class; the message is shown to the learner, so write it for them."""


class TransientJobError(JobError):
    """Worth retrying later: a timeout, a 429, a 5xx, a dependency briefly down."""


class PermanentJobError(JobError):
    """Retrying cannot help: a corrupt file, a private video, an empty text."""


class JobCancelled(JobError):
    """The job was cancelled (or its subject deleted) while it ran."""
