"""RedisRaft against one Redis, and its failures (E20-E23)."""

from __future__ import annotations

RAFT_EXPERIMENTS: tuple = ()  # (filled in below as they are written)
