"""The peers side by side (E24)."""

from __future__ import annotations

PEER_EXPERIMENTS: tuple = ()  # (filled in below as they are written)
