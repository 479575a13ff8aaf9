from __future__ import annotations

import json
import subprocess
import sys

import pytest

from wordcount.cli import main
from wordcount.exceptions import EXIT_INPUT_ERRORS, EXIT_USAGE

from .conftest import tsv


def test_text_output_top_and_totals(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("b a b c b a\n")
    assert main(["count", str(tmp_path), "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["b", "3"] and out[1].split() == ["a", "2"]
    assert "6 words, 3 distinct, 1 files" in out[2]


def test_json_and_counts_out(nasty_corpus, nasty_oracle, tmp_path, capsys):
    counts = tmp_path / "counts.tsv"
    rc = main(["count", str(nasty_corpus), "--json", "--top", "5", "--counts-out", str(counts),
               "--engine", "processes", "--workers", "2", "--chunk-size", "4K"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"top", "total", "distinct", "files", "bytes", "seconds", "errors"}
    ranked = sorted(nasty_oracle.items(), key=lambda kv: (-kv[1], kv[0]))
    assert doc["top"] == [list(kv) for kv in ranked[:5]]
    assert doc["total"] == sum(nasty_oracle.values())
    assert doc["distinct"] == len(nasty_oracle)
    assert doc["errors"] == []
    assert counts.read_text(encoding="utf-8") == tsv(nasty_oracle)


def test_no_input_matched_exits_2(tmp_path, capsys):
    assert main(["count", str(tmp_path / "missing"), str(tmp_path / "*.nothing")]) == EXIT_USAGE
    assert "no input matched" in capsys.readouterr().err


def test_missing_input_among_good_exits_3(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("x y")
    rc = main(["count", str(tmp_path / "a.txt"), str(tmp_path / "gone.txt"), "--json"])
    assert rc == EXIT_INPUT_ERRORS
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["total"] == 2
    assert doc["errors"] == [{"path": str(tmp_path / "gone.txt"),
                              "error": "no such file, directory or match"}]
    assert "gone.txt" in captured.err


@pytest.mark.parametrize("argv", [["count"], ["count", "x", "--engine", "gpu"],
                                  ["count", "x", "--chunk-size", "lots"], ["frobnicate"],
                                  ["count", "x", "--chunk-size", "0"], ["count", "x", "--top=-1"],
                                  ["count", "x", "--workers", "0"], ["count", "x", "--top", "--"],
                                  ["submit", "x", "--timeout", "0"], ["run", "x", "--timeout=-1"],
                                  ["run", "x", "--crash-prob", "nan"]])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == EXIT_USAGE


def test_module_entry_point_and_corpus_command(tmp_path):
    data = tmp_path / "data"
    gen = subprocess.run([sys.executable, "-m", "wordcount", "corpus", str(data), "--files", "3",
                          "--size", "20K", "--skew-size", "50K"], capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    assert sorted(p.stat().st_size for p in data.iterdir()) == [20480, 20480, 20480, 51200]
    out = subprocess.run([sys.executable, "-m", "wordcount", "count", str(data), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["files"] == 4


def test_version_flag(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"wordcount {metadata.version('wordcount')}"


def test_text_output_shortens_very_long_words(tmp_path, capsys):
    word = "x" * 1000
    (tmp_path / "a.txt").write_text(f"{word} {word} y\n")
    assert main(["count", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.split() == ["x" * 60 + "…(1,000", "chars)", "2"]
