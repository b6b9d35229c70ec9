"""Redis names shared by the API and the workers."""

from __future__ import annotations


def job_events_channel(job_id: str) -> str:
    return f"brainwave:jobs:{job_id}:events"


WORKER_HEARTBEATS_KEY = "brainwave:workers"
"""Sorted set: worker id (host:pid) scored by its last heartbeat, in epoch seconds."""

WORKER_HEARTBEAT_TTL_S = 15.0
