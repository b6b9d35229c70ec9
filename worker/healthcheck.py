"""`python -m worker.healthcheck`: exit 0 when this container's worker is alive.

Every worker heartbeats into the Redis sorted set `brainwave:workers` as "<hostname>:<pid>"
scored by epoch seconds (see worker.main). In a container the hostname is the container's
own, so the worker is healthy when some member starting with "<hostname>:" has a score
newer than now - WORKER_HEARTBEAT_TTL_S. Otherwise this exits 1 and prints why. It is a
separate short-lived process (Docker's HEALTHCHECK), so the sync Redis client is enough.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterable
from typing import cast

import redis

from shared.config import get_settings
from shared.jobs.channels import WORKER_HEARTBEAT_TTL_S, WORKER_HEARTBEATS_KEY

REDIS_TIMEOUT_S = 3.0


def fresh_members(
    heartbeats: Iterable[tuple[bytes | str, float]], hostname: str, now: float
) -> list[str]:
    """The heartbeat members of `hostname` whose score is within the TTL of `now`."""
    prefix = f"{hostname}:"
    members = ((m.decode() if isinstance(m, bytes) else m, score) for m, score in heartbeats)
    return [
        member
        for member, score in members
        if member.startswith(prefix) and score > now - WORKER_HEARTBEAT_TTL_S
    ]


def main() -> int:
    hostname = socket.gethostname()
    now = time.time()
    try:
        settings = get_settings()
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
        )
        with client:
            # The sync client returns a plain list; redis-py types it as maybe-awaitable.
            heartbeats = cast(
                list[tuple[bytes, float]],
                client.zrangebyscore(
                    WORKER_HEARTBEATS_KEY, now - WORKER_HEARTBEAT_TTL_S, "+inf", withscores=True
                ),
            )
    except (redis.RedisError, ValueError) as exc:  # ValueError: invalid settings
        print(f"unhealthy: cannot read worker heartbeats: {exc}", file=sys.stderr)
        return 1
    fresh = fresh_members(heartbeats, hostname, now)
    if not fresh:
        print(
            f"unhealthy: no heartbeat from {hostname}:* in {WORKER_HEARTBEATS_KEY} "
            f"within the last {WORKER_HEARTBEAT_TTL_S:.0f}s",
            file=sys.stderr,
        )
        return 1
    print(f"healthy: {', '.join(fresh)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
