"""The KEYS every Function is called with (functions.py) are the ones its header in
redis/wordcount.lua names, in that order: the header is the protocol's documentation, and a
key passed in another place would be read as another key.

Every call is recorded while real jobs run (both queues, both commit modes, staged commits,
operator commands); each key is named by its suffix (keys.py) and compared with the header."""

from __future__ import annotations

import re
import shutil

import pytest

from wordcount import client, functions, jobs, keys
from wordcount.connection import Connection, library_text
from wordcount.queue import Queues
from wordcount.worker import Worker

from .conftest import connect, take

# the header's name for a key where keys.py spells it otherwise
ALIASES = {"tasks": "stream", "stage": "piece"}
SHARED = {keys.active(): "active", keys.registry(): "registry", keys.deleted(): "deleted"}


def key_name(key: str) -> str:
    if key in SHARED:
        return SHARED[key]
    suffix = key.split("}:", 1)[1].split(":", 1)[0]
    return ALIASES.get(suffix, suffix)


def _headers() -> dict[str, str]:
    """Each Function's KEYS text (the header's 'KEYS:' up to 'ARGV:' or the header's end)."""
    lua = library_text()
    out = {}
    for m in re.finditer(r"--\[\[ (\w+):(.*?)\]\]", lua, re.S):
        got = re.search(r"KEYS:(.*?)(?:\nARGV:|ARGV:|$)", m.group(2), re.S)
        if got:
            out[m.group(1)] = " ".join(got.group(1).split())
    settle = lua[lua.index("--[[ The keys and arguments that settling a task needs"):]
    out["settle_keys"] = " ".join(settle[settle.index("KEYS:") + 5:settle.index("ARGV:")]
                                  .split())
    return out


def _numbered(text: str) -> list[str]:
    """'1 meta, 2 piece (list), 3 leases' -> ['meta', 'piece', 'leases']."""
    text = re.sub(r"\([^)]*\)", "", text)
    return [name for _, name in re.findall(r"(\d+) (\w+)", text)]


def header_keys(fn: str, kind: str, headers: dict[str, str]) -> tuple[list[str], str | None]:
    """The key names ``fn``'s header gives for a call on the ``kind`` queue, and the name of a
    trailing run of keys of any length ('then the pieces'), if any."""
    text = headers[fn].rstrip(".")
    if text.startswith("none"):
        return [], None
    if m := re.match(r"as (wc_\w+)", text):
        return header_keys(m.group(1), kind, headers)
    if text.startswith("1-18 as job_keys"):
        return [*(ALIASES.get(n, n) for n in keys.JOB_KEYS), "active", "registry",
                "deleted"], None
    names: list[str] = []
    tail = None
    if text.startswith("settle_keys"):
        names += header_keys("settle_keys", kind, headers)[0]
        text = text.split(")", 1)[1] if ")" in text.split(",")[0] else text[len("settle_keys"):]
    head, _, own = text.partition("stream queue:")
    if own:  # the queue's own keys
        stream, _, lease = own.partition("lease queue:")
        head += " " + (stream if kind == "stream" else lease)
    names += _numbered(head)
    if m := re.search(r"then (?:the )?(pieces|counts)\b", head):
        if m.group(1) == "pieces":
            tail = "piece"
        else:
            names.append(m.group(1))
    return names, tail


@pytest.fixture
def recorded(monkeypatch):
    calls: list[tuple[str, list[str]]] = []
    real = Connection.fcall

    def fcall(self, name, keys_, args):
        calls.append((name, list(keys_)))
        return real(self, name, keys_, args)
    monkeypatch.setattr(Connection, "fcall", fcall)
    return calls


def test_every_function_is_called_with_the_keys_its_header_names(redis_server, queue_kind,
                                                                 recorded, tmp_path):
    from wordcount.lab.corpus import generate

    corpus = tmp_path / "in"
    generate(corpus, 3, 40_000, seed=5)
    # (commits of small tasks in one call, of a reduce's partition in pieces)
    conn = connect(redis_server, commit_pairs=400, speculate_min_ms=0, speculate_factor=0.01)
    for mode, name in (("shuffle", "s"), ("atomic", "a")):
        job = client.plan_job([str(corpus)], 2_000, name, pack_size=0)
        job.queue = queue_kind
        job.reduces = 2 if mode == "shuffle" else 0
        client.submit(conn, job)
        w = Worker(conn.settings)
        for _ in range(200):
            if client.progress(conn, name).finished:
                break
            w.work_once()
            w.drain()
        assert client.progress(conn, name).finished
    # a backup copy, a dead letter and its requeue, a cancel, a delete, a sweep, a prune
    moved = tmp_path / "moved"
    shutil.move(corpus / sorted(p.name for p in corpus.iterdir())[0], moved)
    job = client.plan_job([str(corpus), str(moved)], 20_000, "ops")
    job.queue = queue_kind
    client.submit(conn, job)
    c = take(conn, "ops", "w1")
    Queues(conn, "w2", conn.settings).backends[queue_kind]._speculate(["ops"])
    functions.dead(conn, c, "unreadable")
    jobs.requeue(conn, "ops")
    jobs.cancel(conn, "ops")
    jobs.delete(conn, "ops")
    jobs.sweep(conn, "ops")
    jobs.expire(conn, 0)
    headers = _headers()
    seen = set()
    for fn, called in recorded:
        seen.add(fn)
        want, tail = header_keys(fn, queue_kind, headers)
        got = [key_name(k) for k in called]
        if tail:
            assert got[:len(want)] == want and all(n == tail for n in got[len(want):]), (
                fn, got, want, tail)
        else:
            assert got == want, (fn, got, want)
    expected = {"wc_submit", "wc_commit", "wc_map_commit", "wc_stage", "wc_commit_staged",
                "wc_merge", "wc_dead", "wc_requeue", "wc_cancel", "wc_delete"}
    expected |= ({"wc_take", "wc_speculate"} if queue_kind == "stream" else
                 {"wc_lease_claim", "wc_lease_speculate"})
    assert expected <= seen, expected - seen


def test_every_function_names_its_keys_and_arguments_at_its_top():
    lua = library_text()
    registered = set(re.findall(r"register_function(?:\('|\{function_name = ')(\w+)'", lua))
    assert len(registered) >= 19
    for fn in registered:
        head = re.search(r"--\[\[ " + fn + r":(.*?)\]\]", lua, re.S)
        assert head and "KEYS:" in head.group(1) and "ARGV:" in head.group(1), fn
