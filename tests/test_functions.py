"""The KEYS every Function is called with (functions.py) are the ones its header in
redis/wordcount.lua names, in that order: the header is the protocol's documentation, and a
key passed in another place would be read as another key.

Every call is recorded while real jobs run (both queues, both commit modes, staged commits,
operator commands); each key is named by its suffix (keys.py) and compared with the header."""

from __future__ import annotations

import re
import shutil
import time

import pytest

from wordcount import client, functions, jobs, keys
from wordcount.connection import Connection, library_text
from wordcount.queue import Queues
from wordcount.worker import Worker

from .conftest import connect, take

# the header's name for a key where keys.py spells it otherwise
ALIASES = {"tasks": "stream", "stage": "piece"}
SHARED = {keys.active(): "active", keys.registry(): "registry", keys.deleted(): "deleted",
          keys.events(): "events", keys.run(): "run"}


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
    if text.startswith("1-19 as job_keys"):
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
    functions.event(conn, "resubmit", "client-test", "an event", job="ops")
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
                "wc_merge", "wc_dead", "wc_requeue", "wc_cancel", "wc_delete", "wc_event"}
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


def test_the_history_records_takes_and_settles_and_makes_the_timeline(redis_server, queue_kind,
                                                                        tmp_path):
    """Each take and settle appends "<ms> <what> <task> <worker>" to the job's history, in the
    call that does it, and a commit the moment its counting ended; the dashboard turns it into
    attempts per worker (claimed -> counted -> committed). A straggler's task is backed up: the
    backup commits, the straggler's late commit is a duplicate."""
    from wordcount.dashboard.state import timeline
    from wordcount.protocol import Applied, now_ms
    from wordcount.words import reference_counts

    conn = connect(redis_server, speculate_min_ms=0, speculate_factor=0.01)
    data = {"a.txt": b"one two\n", "b.txt": b"three four four\n"}
    d = tmp_path / "in"
    d.mkdir()
    for name, text in data.items():
        (d / name).write_bytes(text)
    job = client.plan_job([str(d)], 1 << 20, "h", pack_size=0)
    job.queue = queue_kind
    client.submit(conn, job)
    q = {w: Queues(conn, w, conn.settings) for w in ("w1", "w2", "w3")}
    c1, c2 = take(conn, "h", "w1"), take(conn, "h", "w2")
    assert (c1.consumer, c2.consumer) == ("w1", "w2")

    def counts(c):
        return reference_counts((d / c.task.path).read_bytes())
    counted = now_ms()
    assert q["w1"].complete(c1, counts(c1), 8, 1, counted_ms=counted) is Applied.APPLIED
    time.sleep(0.01)  # (older than the backup threshold, 0.01 x the mean task time)
    backup = q["w3"].backends[queue_kind]._speculate(["h"])
    assert backup is not None and backup.id == c2.id and backup.consumer == "w3"
    assert q["w3"].complete(backup, counts(backup), 16, 1) is Applied.APPLIED
    assert q["w2"].complete(c2, counts(c2), 16, 1, counted_ms=counted + 1) is Applied.DUPLICATE
    entries = conn.call(lambda r: r.lrange(keys.history("h"), 0, -1))
    steps = [e.split(" ", 1)[1] for e in entries]
    assert steps == [f"take {c1.id} w1", f"take {c2.id} w2", f"done {c1.id} w1 {counted}",
                     f"backup {c2.id} w3", f"done {c2.id} w3", "finished - -",
                     f"dup {c2.id} w2 {counted + 1}"], steps
    times = [int(e.split(" ", 1)[0]) for e in entries]
    assert times == sorted(times)
    tl = timeline(entries, maps=2)
    assert tl["workers"] == ["w1", "w2", "w3"]
    assert not any(a["reduce"] for a in tl["attempts"])
    assert [(a["task"], a["worker"], a["how"], a["outcome"]) for a in tl["attempts"]] == [
        (c1.id, "w1", "take", "done"), (c2.id, "w2", "take", "dup"),
        (c2.id, "w3", "backup", "done")]
    first = tl["attempts"][0]
    assert first["start"] <= first["counted"] == counted <= first["end"]
    assert "counted" not in tl["attempts"][2]  # (committed without the moment: not drawn)
    assert [p["kind"] for p in tl["phases"]] == ["finished"]
    jobs.delete(conn, "h")
    assert conn.call(lambda r: r.exists(keys.history("h"))) == 0  # it goes with the job


def test_a_stolen_attempt_that_never_settles_ends_lost_on_the_timeline():
    from wordcount.dashboard.state import timeline

    tl = timeline(["100 take 0-1 w1", "200 take 0-2 w2", "900 steal 0-1 w3",
                   "1000 done 0-2 w2", "1200 done 0-1 w3", "1300 finished - -",
                   "garbage line"])
    got = {(a["task"], a["worker"]): (a["start"], a["end"], a["outcome"]) for a in tl["attempts"]}
    assert got == {("0-1", "w1"): (100, 900, "lost"), ("0-2", "w2"): (200, 1000, "done"),
                   ("0-1", "w3"): (900, 1200, "done")}
    running = timeline(["100 take 0-1 w1"])["attempts"]
    assert running == [{"task": "0-1", "worker": "w1", "how": "take", "start": 100,
                        "end": None, "outcome": "running", "reduce": False}]
    # an attempt superseded: its commit rolled back (or its worker gone), the task redelivered
    # to another worker after the rollback and settled there; never "running" after that
    redone = timeline(["100 take 0-1 w1", "150 take 0-2 w1", "300 take 0-1 w2",
                       "400 done 0-1 w2 390", "450 backup 0-2 w3", "500 done 0-2 w3",
                       "600 finished - -"])["attempts"]
    assert [(a["task"], a["worker"], a["end"], a["outcome"]) for a in redone] == [
        ("0-1", "w1", 400, "lost"), ("0-2", "w1", 500, "lost"), ("0-1", "w2", 400, "done"),
        ("0-2", "w3", 500, "done")]
    late = timeline(["100 take 0-1 w1", "200 backup 0-1 w2", "300 done 0-1 w2",
                     "350 dup 0-1 w1 340"])["attempts"]  # (its own dup ends it, not the done)
    assert [(a["worker"], a["end"], a["outcome"]) for a in late] == [
        ("w1", 350, "dup"), ("w2", 300, "done")]
    shuffled = timeline(["100 take 0-1 w1", "200 done 0-1 w1", "200 reduce - -",
                         "300 take 0-2 w1", "400 done 0-2 w1"], maps=1)
    assert [a["reduce"] for a in shuffled["attempts"]] == [False, True]
    assert shuffled["phases"] == [{"t": 200, "kind": "reduce"}]


def test_the_shared_feed_records_each_redis_start_once(redis_server):
    """wc_event: the shared event feed; an event naming a run id is recorded only if that run
    id is not the one recorded last (one redis-start per Redis start, whichever worker saw it
    first)."""
    from wordcount import events

    conn = connect(redis_server)
    assert functions.event(conn, "redis-start", "w1", "Redis started (run_id abc)",
                           run_id="abc", at_ms=5)
    assert not functions.event(conn, "redis-start", "w2", "Redis started (run_id abc)",
                               run_id="abc")
    assert functions.event(conn, "resubmit", "client-h-1", "job j was missing: resubmitted",
                           job="j")
    assert functions.event(conn, "redis-start", "w2", "Redis started (run_id def)",
                           run_id="def")
    got = events.read(conn)
    assert [(e.kind, e.job, e.source, e.text) for e in got] == [
        ("redis-start", "", "w1", "Redis started (run_id abc)"),
        ("resubmit", "j", "client-h-1", "job j was missing: resubmitted"),
        ("redis-start", "", "w2", "Redis started (run_id def)")]
    assert got[0].t == 5 and events.Event.parse("not an event") is None
    # a worker's watch records the Redis it reaches, once
    watch = events.RedisWatch("w9")
    watch.check(conn)
    watch.check(conn)
    run_id = conn.call(lambda r: r.info("server"))["run_id"]
    starts = [e for e in events.read(conn) if e.kind == "redis-start"]
    assert len(starts) == 3 and run_id[:8] in starts[-1].text and starts[-1].source == "w9"


def test_the_settled_series_from_the_history_counts_requeues_once_and_its_cut_off_start():
    """The dashboard's settled-over-time chart, from the history (so the same after a restart):
    a dead letter requeued and done moves from dead to done; a history whose oldest entries
    were dropped (its cap) starts at what the job's meta says was settled before them."""
    from wordcount.dashboard.state import settled_series

    entries = ["100 take 0-1 w1", "150 take 0-2 w2", "200 done 0-1 w1 180",
               "300 dead 0-2 w2", "400 take 0-2 w1", "500 dup 0-1 w2 450",
               "600 done 0-2 w1", "700 finished - -"]
    assert settled_series(entries, done=2, dead=0) == [[200, 1, 0], [300, 1, 1], [600, 2, 0]]
    # the first 5 tasks' entries dropped by the cap: the meta says 7 done
    assert settled_series(entries, done=7, dead=0) == [[200, 6, 0], [300, 6, 1], [600, 7, 0]]
    assert settled_series([], done=3, dead=1) == []
