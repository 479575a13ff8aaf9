from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest

import wordcount
from wordcount import engines
from wordcount.exceptions import EXIT_INPUT_ERRORS
from wordcount.lab import clirun

SRC = os.path.dirname(os.path.dirname(wordcount.__file__))


@pytest.mark.parametrize("engine", ["serial", "threads", "processes", "reference"])
@pytest.mark.parametrize("chunk_size", [64 << 20, 1000])
def test_engines_equal_oracle_full_table(engine, chunk_size, nasty_corpus, nasty_oracle):
    result = engines.count_inputs([str(nasty_corpus)], engine, workers=2, chunk_size=chunk_size)
    assert result.errors == []
    assert result.counts == nasty_oracle  # every word, every count
    assert result.bytes == sum(p.stat().st_size for p in nasty_corpus.rglob("*") if p.is_file())
    assert result.files == sum(1 for p in nasty_corpus.rglob("*") if p.is_file())


def test_unreadable_input_is_reported_and_the_rest_counted():
    """Mode-000 file among readable ones: reported in errors, exit 3, the rest counted. Root
    reads anything, so as root the command runs without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH."""
    top = tempfile.mkdtemp(prefix="wc-perm-")
    try:
        os.chmod(top, 0o755)
        with open(os.path.join(top, "ok.txt"), "w") as f:
            f.write("fine words fine")
        bad = os.path.join(top, "secret.txt")
        with open(bad, "w") as f:
            f.write("hidden")
        os.chmod(bad, 0)
        argv = [*clirun.COMMAND, "count", top, "--json"]
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root and util-linux setpriv is missing: can't drop "
                            "CAP_DAC_OVERRIDE to make a file unreadable")
            caps = "-dac_override,-dac_read_search"
            argv = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *argv]
        proc = subprocess.run(argv, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": SRC})
        assert proc.returncode == EXIT_INPUT_ERRORS, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["total"] == 3 and doc["top"] == [["fine", 2], ["words", 1]]
        assert doc["errors"] == [{"path": bad, "error": "Permission denied"}]
        assert f"{bad}: Permission denied" in proc.stderr
    finally:
        shutil.rmtree(top)


def test_vanished_file_is_reported(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.txt").write_text("beta")
    real_plan = engines.planner.plan

    def plan_then_delete(files, chunk_size, lines=False):
        tasks, errors = real_plan(files, chunk_size, lines)
        (tmp_path / "b.txt").unlink()
        return tasks, errors

    monkeypatch.setattr(engines.planner, "plan", plan_then_delete)
    result = engines.count_inputs([str(tmp_path)], "serial")
    assert result.counts == {"alpha": 1}
    assert result.errors[0].path.endswith("b.txt")
    assert "No such file" in result.errors[0].error
    assert result.files == 1


def test_unknown_engine():
    with pytest.raises(ValueError):
        list(engines.execute([], "gpu"))
