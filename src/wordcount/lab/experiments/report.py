"""From the experiments' JSON to what a reader sees: a PNG plot each (matplotlib) and
``docs/EXPERIMENTS.md``. Every number in the report is read from the JSON; nothing is typed
by hand. ``validate`` is the schema the report relies on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..corpus import human
from .core import SCHEMA

REQUIRED = {"schema": int, "name": str, "title": str, "question": str, "x_label": str,
            "metric": str, "setup": str, "params": dict, "cache": str, "machine": dict,
            "corpora": dict, "runs": list, "summary": list}
RUN_KEYS = {"x", "variant", "rep", "seconds", "bytes", "exit", "exact"}
ROW_KEYS = {"variant", "x", "n", "failed"}
MACHINE_KEYS = {"cores", "memory_bytes", "python", "redis", "wordcount", "commit"}


class InvalidResult(ValueError):
    pass


def validate(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` if it has what the report reads; InvalidResult naming what is missing."""
    for key, kind in REQUIRED.items():
        if not isinstance(doc.get(key), kind):
            raise InvalidResult(f"{doc.get('name', '?')}: {key!r} missing or not {kind.__name__}")
    if doc["schema"] != SCHEMA:
        raise InvalidResult(f"{doc['name']}: schema {doc['schema']}, the report reads {SCHEMA}")
    if doc["metric"] not in ("seconds", "mb_s"):
        raise InvalidResult(f"{doc['name']}: unknown metric {doc['metric']!r}")
    if missing := MACHINE_KEYS - doc["machine"].keys():
        raise InvalidResult(f"{doc['name']}: machine facts missing: {sorted(missing)}")
    for r in doc["runs"]:
        if missing := RUN_KEYS - r.keys():
            raise InvalidResult(f"{doc['name']}: a run lacks {sorted(missing)}")
    for row in doc["summary"]:
        if missing := ROW_KEYS - row.keys():
            raise InvalidResult(f"{doc['name']}: a summary row lacks {sorted(missing)}")
        if row["n"] and not {"median", "min", "max", "mb_s"} <= row.keys():
            raise InvalidResult(f"{doc['name']}: a summary row with runs lacks its figures")
    return doc


def _numeric(xs: list[Any]) -> bool:
    return all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)


def plot(doc: dict[str, Any], path: Path) -> Path:
    """A PNG of the summary: the metric against the points, a line (numeric points, log axes
    when they span decades) or grouped bars (named points), each with its min-max spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["summary"] if r["n"]]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    xs = list(dict.fromkeys(json.dumps(r["x"]) for r in rows))
    points = [json.loads(x) for x in xs]
    mb = doc["metric"] == "mb_s"

    def value(r: dict[str, Any], which: str) -> float:
        return r["bytes"] / r[which] / 1e6 if mb else r[which]

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    if _numeric(points) and len(points) > 1:
        for v in variants:
            vr = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["x"])
            x = [r["x"] for r in vr]
            y = [value(r, "median") for r in vr]
            lo = [abs(value(r, "median") - value(r, "max" if mb else "min")) for r in vr]
            hi = [abs(value(r, "min" if mb else "max") - value(r, "median")) for r in vr]
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=v)
        if doc["name"] == "E2":  # the ideal: one worker's throughput × N
            one = next((r for r in rows if r["variant"] == "run" and r["x"] == 1), None)
            if one:
                ideal = [value(one, "median") * x for x in sorted(points)]
                ax.plot(sorted(points), ideal, "k:", label="ideal (linear)")
        if max(points) / max(min(points), 1e-9) >= 100:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(doc["x_label"])
    else:
        width = 0.8 / max(1, len(variants))
        for i, v in enumerate(variants):
            for j, x in enumerate(xs):
                r = next((r for r in rows if r["variant"] == v and json.dumps(r["x"]) == x),
                         None)
                if r is None:
                    continue
                med = value(r, "median")
                lo = abs(med - value(r, "max" if mb else "min"))
                hi = abs(value(r, "min" if mb else "max") - med)
                ax.bar(j + i * width, med, width, yerr=[[lo], [hi]], capsize=3,
                       label=v if j == 0 or x == xs[0] else None, color=f"C{i}")
        ax.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(xs))],
                      [str(p) if not _numeric([p]) else _fmt_x(p) for p in points])
        ax.set_xlabel(doc["x_label"])
    ax.set_ylabel("throughput (MB/s)" if mb else "wall time (s)")
    ax.set_title(f"{doc['name']}: {doc['title']} (median of {doc['params']['repeat']}, "
                 "bars: min-max)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


EVENT_KINDS = (  # (a word in the event's text, its legend label, its colour): first match wins
    ("worker", "worker crashed", "black"), ("paused", "paused (SIGSTOP)", "orange"),
    ("resumed", "resumed (SIGCONT)", "teal"), ("elected", "leader elected", "purple"),
    ("killed", "killed", "red"), ("down", "killed", "red"), ("restarted", "restarted", "green"),
    ("started", "restarted", "green"))


def event_kind(what: str) -> tuple[str, str]:
    """An event's legend label and colour, from the words of its text ("Redis killed", "node 2
    paused", "leader elected: node 3", "worker crashed", ...)."""
    low = what.lower()
    for word, kind, color in EVENT_KINDS:
        if word in low:
            return kind, color
    return "other", "gray"


def timeline(doc: dict[str, Any], path: Path) -> Path | None:
    """A fault experiment's timeline: tasks settled over time in its slowest faulty run, each
    Redis kill and restart marked on the same axis, the counts check under it. None when the
    experiment records no timeline."""
    runs = [r for r in doc["runs"] if r.get("events") and r["exact"]]
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = max(runs, key=lambda r: r["seconds"])
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    t = [p[0] for p in run["timeline"]]
    ax.step(t, [p[1] for p in run["timeline"]], where="post", label="tasks settled")
    ax.plot(t, [p[2] for p in run["timeline"]], "k:", label="tasks in the job")
    shown: set[str] = set()
    for at, what in run["events"]:
        kind, color = event_kind(what)
        ax.axvline(at, color=color, alpha=0.6, lw=1, ls="--" if kind == "worker crashed" else "-",
                   label=None if kind in shown else kind)
        shown.add(kind)
    ax.set_xlabel("seconds since submission")
    ax.set_ylabel("tasks settled")
    ax.set_title(f"{doc['name']}: {run['variant']} ({doc['x_label']}: {run['x']}; its slowest run)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.text(0.5, 0.01, f"counts check against the serial engine: lost = {run['lost']}, "
                        f"doubled = {run['doubled']}", ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt_x(x: Any) -> str:
    """A point as the report shows it: sizes (ints from 1 KiB up) in KiB/MiB/GiB."""
    if isinstance(x, int) and x >= 1024:
        return human(x)
    return f"{x:g}" if isinstance(x, float) else str(x)


def _cell(row: dict[str, Any] | None, mb: bool) -> str:
    if row is None:
        return ""
    if not row["n"]:
        return f"FAILED ({row['failed']})"
    if mb:
        return f"{row['mb_s']:.1f} MB/s ({row['median']:.2f} s, {row['min']:.2f}–{row['max']:.2f})"
    return f"{row['median']:.2f} s ({row['min']:.2f}–{row['max']:.2f})"


def table(doc: dict[str, Any]) -> str:
    """The summary as a markdown table: a row per point, a column per variant."""
    rows = doc["summary"]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    xs = list(dict.fromkeys(json.dumps(r["x"]) for r in rows))
    mb = doc["metric"] == "mb_s"
    out = [f"| {doc['x_label']} | " + " | ".join(variants) + " |",
           "|---|" + "---|" * len(variants)]
    for x in xs:
        cells = [_cell(next((r for r in rows if r["variant"] == v and json.dumps(r["x"]) == x),
                            None), mb) for v in variants]
        out.append(f"| {_fmt_x(json.loads(x))} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _commits(docs: list[dict[str, Any]]) -> str:
    """The commit(s) the results were made at: one, or each with its experiments."""
    by: dict[str, list[str]] = {}
    for d in docs:
        by.setdefault(d["machine"]["commit"], []).append(d["name"])
    if len(by) == 1:
        return f"commit `{next(iter(by))}`"
    return "commits " + ", ".join(f"`{c}` ({', '.join(names)})" for c, names in by.items())


def _caveat(doc: dict[str, Any]) -> str:
    """Before an answer whose experiment had failed runs: its sentence speaks of the exact
    runs only (a claim like "every table exact" is about them)."""
    bad = sum(1 for r in doc["runs"] if not r["exact"])
    return (f"*{bad} of its {len(doc['runs'])} runs FAILED (below); what follows is about the "
            "exact runs only.* " if bad else "")


def markdown(docs: list[dict[str, Any]], answers: dict[str, str], images: str) -> str:
    """``docs/EXPERIMENTS.md``: the machine, then for each experiment its question, setup,
    plot, table and answer (``answers``: the catalog's sentences, made from the same JSON)."""
    if not docs:
        return "# Experiments\n\nNo results yet: run `make experiments`.\n"
    m = docs[0]["machine"]
    failed = sum(1 for d in docs for r in d["runs"] if not r["exact"])
    total = sum(len(d["runs"]) for d in docs)
    lines = [
        "# Experiments", "",
        "Generated by `make experiments` (`wordcount experiment --report` remakes it from "
        "`results/experiments/*.json`); every number below is read from that JSON. Each run "
        "is a whole `wordcount` command as its own process, its table compared in full with "
        "the serial engine's: an inexact run is a failure, never a point. Variants alternate "
        "within each repeat (these machines are noisy).", "",
        f"Machine: {m['cores']} cores, {m['memory_bytes'] / 2**30:.0f} GiB, Python "
        f"{m['python']}, Redis {m['redis']}, wordcount {m['wordcount']} at "
        + _commits(docs) + f"; scale {docs[0]['params']['scale']:g}, "
        f"{docs[0]['params']['repeat']} runs per cell. {total} runs, {failed} inexact.", "",
        f"Cache: {docs[0]['cache']}.", ""]
    for d in docs:
        if d.get("skipped"):
            lines += [f"## {d['name']}: {d['question']}", "",
                      f"**Skipped** on this machine: {d['skipped']}.", ""]
            continue
        nbytes = sorted({c["bytes"] for c in d["corpora"].values()})
        sizes = ", ".join(_fmt_x(b) for b in nbytes[:6]) + (" …" if len(nbytes) > 6 else "")
        left_out = "".join(f" Not run here: {v}, because {why}." for v, why in
                           d.get("skipped_variants", {}).items())
        lines += [f"## {d['name']}: {d['question']}", "",
                  f"Setup: {d['setup']}. Corpus bytes per point: {sizes} (checksums in the "
                  f"JSON).{left_out}", "",
                  f"![{d['name']}]({images}/{d['name']}.png)", "",
                  *([f"![{d['name']} timeline]({images}/{d['name']}-timeline.png)", ""]
                    if any(r.get("events") for r in d["runs"]) else []),
                  table(d), "",
                  f"**Answer.** {_caveat(d)}{answers.get(d['name'], '')}", ""]
        bad = [r for r in d["runs"] if not r["exact"]]
        if bad:
            lines += [f"**{len(bad)} runs FAILED** (not plotted): "
                      + "; ".join(f"{r['variant']} at {r['x']}: {r.get('error', '?')}"
                                  for r in bad[:5]), ""]
    return "\n".join(lines).rstrip() + "\n"
