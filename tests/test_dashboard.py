"""`wordcount dashboard` against real redis-server processes and real jobs: its JSON endpoints,
its event stream following a job to "done", a Redis SIGKILL + restart seen as a restart event,
a file named ``<script>alert(1)</script>`` coming back as text, the token and loopback rules, and
headless Chromium (Debian's, driven by Selenium; nothing downloaded) rendering it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from wordcount import client
from wordcount.embedded import LocalCluster, free_port
from wordcount.workeropts import WorkerOptions

from .conftest import connect

XSS = "<script>alert(1)</script>"
TOKEN = "t0ken-for-the-dashboard-tests"
ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


class Dashboard:
    """`wordcount dashboard` as a child process on a free loopback port."""

    def __init__(self, env: dict[str, str], *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wordcount", "dashboard", "--port", str(self.port), *extra],
            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        self.banner = self.proc.stdout.readline()  # printed once it listens
        assert "wordcount dashboard: http://127.0.0.1:" in self.banner, self.output()

    def output(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.banner + self.proc.communicate(timeout=10)[0]

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict]:
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def post(self, path: str, body: object = None, headers: dict[str, str] | None = None
             ) -> tuple[int, dict]:
        """POST ``body`` as JSON (None: no body); the status and the JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data or b"", method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def json(self, path: str) -> dict:
        status, body, _ = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def until(self, path: str, ok, timeout: float = 20.0) -> dict:
        """GET ``path`` every 0.1 s until ``ok(doc)``."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.json(path)
            if ok(doc):
                return doc
            assert time.monotonic() < deadline, f"{path} never satisfied the test: {doc}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                assert self.proc.wait(10) == 0, "the dashboard did not stop cleanly on SIGTERM"
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
        self.proc.stdout.close()


@pytest.fixture
def dashboard(redis_server):
    d = Dashboard(redis_server.env())
    yield d
    d.stop()


def make_corpus(root: Path, files: int = 4, lines: int = 6000) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"f{i}.txt").write_text("".join(f"alpha beta w{i} n{k % 50}\n"
                                                for k in range(lines)))
    return root


def submit(server, inputs: Path, chunk: int = 40_000, name: str | None = None,
           unlink: Path | None = None, hide: Path | None = None) -> client.Job:
    conn = connect(server)
    job = client.plan_job([str(inputs)], chunk, name, pack_size=0)
    if unlink is not None:  # planned, then gone: its task is dead-lettered with its path
        unlink.unlink()
    if hide is not None:  # the same, until it is renamed back (the same file: same identity)
        hide.rename(hide.with_name(hide.name + ".hidden"))
    client.submit(conn, job)
    conn.close()
    return job


def slow_cluster(server, tmp_path: Path) -> LocalCluster:
    """Two workers at 1/40 speed that also stall once in every task for up to 1.2 s: a task
    takes ~0.6 s on any machine (a slowdown alone scales with the CPU: a fast run once went
    from 0 to 12 tasks settled between two samples)."""
    flags = ["--slowdown", "40", "--stall-prob", "1", "--stall-max", "1.2"]
    return LocalCluster(2, server, options=WorkerOptions.parse(flags),
                        log_path=str(tmp_path / "workers.log"))


def xss_corpus(tmp_path: Path) -> tuple[Path, Path]:
    """A directory holding good.txt and ``<script>alert(1)</script>.txt`` (a directory
    ``<script>alert(1)<`` with a file ``script>.txt`` in it)."""
    data = tmp_path / "xss"
    (data / "<script>alert(1)<").mkdir(parents=True)
    evil = data / "<script>alert(1)<" / "script>.txt"
    evil.write_text("evil words\n")
    (data / "good.txt").write_text("good words good\n")
    return data, evil


class Stream(threading.Thread):
    """Reads /events in the background: every snapshot's row of one job, and workers seen."""

    def __init__(self, url: str, job: str) -> None:
        super().__init__(daemon=True)
        self.url, self.job = url, job
        self.rows: list[dict] = []
        self.workers: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        with urllib.request.urlopen(f"{self.url}/events?job={self.job}", timeout=30) as r:
            for raw in r:
                line = raw.decode()
                if line.startswith("data: "):
                    doc = json.loads(line[6:])
                    self.workers |= {w["name"] for w in doc["workers"]}
                    row = next((j for j in doc["jobs"] if j["job"] == self.job), None)
                    if row:
                        self.rows.append({**row, "detail": doc.get("job"),
                                          "sampled_ms": doc["sampled_ms"]})
                if self.stop.is_set() or (self.rows and self.rows[-1]["state"] == "done"):
                    return


def test_endpoints_and_stream_follow_a_real_job(redis_server, dashboard, tmp_path):
    job = submit(redis_server, make_corpus(tmp_path / "data"))
    assert len(job.tasks) >= 6
    dashboard.until("/api/jobs", lambda d: any(j["job"] == job.name for j in d["jobs"]))
    stream = Stream(dashboard.url, job.name)
    stream.start()
    with slow_cluster(redis_server, tmp_path):
        seen_workers = dashboard.until("/api/workers", lambda d: len(d["workers"]) == 2)
        stream.join(60)
    assert not stream.is_alive(), "the stream never showed the job done"
    done = [r["done"] for r in stream.rows]
    assert done == sorted(done) and len(set(done)) >= 3, f"too few steps seen: {done}"
    times = [r["sampled_ms"] for r in stream.rows]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert stream.rows[-1]["state"] == "done" and stream.rows[-1]["done"] == len(job.tasks)
    assert stream.workers == {w["name"] for w in seen_workers["workers"]}
    assert all(w["state"] in ("idle", "busy") and not w["lost"] for w in seen_workers["workers"])
    assert max(gaps) <= 1200, f"samples {max(gaps)} ms apart: the page would lag"
    # the job's page as the stream carried it: its series climbs to every task settled
    series = stream.rows[-1]["detail"]["series"]
    assert series[0][1] < len(job.tasks) and series[-1][1] == len(job.tasks)

    row = next(j for j in dashboard.json("/api/jobs")["jobs"] if j["job"] == job.name)
    assert (row["state"], row["done"], row["dead"], row["total"]) == (
        "done", len(job.tasks), 0, len(job.tasks))
    page = dashboard.json(f"/api/jobs/{job.name}")
    assert page["job"]["state"] == "done" and page["dead_letters"] == [] and page["held"] == []
    assert ["alpha", 4 * 6000] in page["top"]
    # the timeline, from the job's history in Redis: every task's accepted attempt, on the
    # two workers; and the same from a dashboard started after the job ended
    tl = page["timeline"]
    assert set(tl["workers"]) <= {w["name"] for w in seen_workers["workers"]}
    accepted = [a["task"] for a in tl["attempts"] if a["outcome"] == "done"]
    assert sorted(accepted) == sorted(f"0-{i}" for i in range(1, len(job.tasks) + 1))
    assert all(a["end"] >= a["start"] for a in tl["attempts"])
    assert [p["kind"] for p in tl["phases"]] == ["finished"]
    later = Dashboard(redis_server.env())
    try:
        later.until("/api/jobs", lambda d: any(j["job"] == job.name for j in d["jobs"]))
        again = later.json(f"/api/jobs/{job.name}")
        assert again["timeline"] == tl
        # its settled tasks over time, from the job's history: the climb this dashboard never
        # sampled, to every task
        settled = [p[1] + p[2] for p in again["series"]]
        assert settled[0] < len(job.tasks) and settled[-1] == len(job.tasks), settled
        assert settled == sorted(settled), settled
    finally:
        later.stop()
    kinds = [e["text"] for e in dashboard.json("/api/events")["events"]]
    assert any(f"job {job.name}: running -> done" in t for t in kinds), kinds
    assert sum("appeared (host" in t for t in kinds) == 2, kinds
    assert dashboard.get("/api/jobs/no-such-job")[0] == 404
    assert dashboard.get("/api/jobs/bad%20name")[0] == 400
    # no Redis credential in anything the browser can get
    for path in ("/", "/static/app.js", "/api/jobs", "/api/workers", "/api/redis",
                 "/api/events", f"/api/jobs/{job.name}"):
        assert redis_server.password not in dashboard.get(path)[1], path


def test_redis_restart_is_an_event_and_a_marker(redis_server, dashboard, tmp_path):
    job = submit(redis_server, make_corpus(tmp_path / "data", files=1, lines=100))
    before = dashboard.until("/api/redis", lambda d: d["reachable"] and d["run_id"])
    dashboard.until("/api/jobs", lambda d: any(j["job"] == job.name for j in d["jobs"]))
    time.sleep(1.5)  # `save 1 1`: the job is in the snapshot the restart loads
    redis_server.kill()
    down = dashboard.until("/api/redis", lambda d: not d["reachable"])
    assert "unreachable" in down["error"]  # the server answers, and says why
    assert dashboard.get("/")[0] == 200
    redis_server.start()
    after = dashboard.until("/api/redis", lambda d: d["reachable"])
    assert after["run_id"] != before["run_id"]
    events = dashboard.until("/api/events", lambda d: any(e["kind"] == "redis-restart"
                                                         for e in d["events"]))["events"]
    kinds = [e["kind"] for e in events]
    assert kinds.index("redis-down") < kinds.index("redis-up") < kinds.index("redis-restart")
    markers = dashboard.json(f"/api/jobs/{job.name}")["markers"]
    assert {"redis-down", "redis-up", "redis-restart"} <= {m["kind"] for m in markers}


def test_a_script_file_name_comes_back_as_escaped_json(redis_server, dashboard, tmp_path):
    data, evil = xss_corpus(tmp_path)
    job = submit(redis_server, data, unlink=evil)
    with LocalCluster(1, redis_server, log_path=str(tmp_path / "w.log")):
        dashboard.until("/api/jobs", lambda d: any(j["job"] == job.name and j["state"] == "done"
                                                   for j in d["jobs"]))
    status, body, headers = dashboard.get(f"/api/jobs/{job.name}")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert "<" not in body and "\\u003cscript\\u003e" in body  # no markup, even raw
    [dead] = json.loads(body)["dead_letters"]
    assert dead["path"].startswith(XSS + ".txt") and "No such file" in dead["reason"]
    _, page, headers = dashboard.get("/")
    assert "script-src 'self'" in headers["Content-Security-Policy"]  # no inline script runs
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_refuses_a_public_address_without_a_token():
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_PASSWORD": "x"}
    env.pop("WORDCOUNT_DASHBOARD_TOKEN", None)
    run = [sys.executable, "-m", "wordcount", "dashboard"]
    p = subprocess.run(run + ["--host", "0.0.0.0"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "without a token" in p.stderr, p.stderr
    p = subprocess.run(run + ["--host", "192.0.2.1", "--token", "short"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "at least 16 characters" in p.stderr, p.stderr


def test_with_a_token_every_request_needs_it(redis_server):
    d = Dashboard({**redis_server.env(), "WORDCOUNT_DASHBOARD_TOKEN": TOKEN})
    try:
        for path in ("/", "/api/jobs", "/events", "/static/app.js"):
            assert d.get(path)[0] == 401, path
        assert d.get("/api/jobs", {"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
        assert d.get("/api/jobs", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        status, _, headers = d.get(f"/?token={TOKEN}")
        assert status == 200 and "HttpOnly" in headers["Set-Cookie"]
        cookie = headers["Set-Cookie"].split(";")[0]
        assert d.get("/api/redis", {"Cookie": cookie})[0] == 200
    finally:
        d.stop()


def test_without_a_token_only_a_loopback_host_is_served(dashboard):
    assert dashboard.get("/api/redis", {"Host": "evil.example:8077"})[0] == 403  # DNS rebinding
    assert dashboard.get("/api/redis", {"Host": f"localhost:{dashboard.port}"})[0] == 200


# -- operator actions ------------------------------------------------------------------------------

def meta(server, name: str) -> dict[str, str]:
    conn = connect(server)
    try:
        return conn.call(lambda r: r.hgetall(f"wc:{{{name}}}:meta"))
    finally:
        conn.close()


def test_actions_are_off_unless_asked_for(redis_server, dashboard, tmp_path):
    job = submit(redis_server, make_corpus(tmp_path / "data", files=1, lines=100))
    row = dashboard.until("/api/jobs", lambda d: any(j["job"] == job.name for j in d["jobs"]))
    epoch = next(j["epoch"] for j in row["jobs"] if j["job"] == job.name)
    status, doc = dashboard.post(f"/api/jobs/{job.name}/cancel",
                                 {"confirm": job.name, "epoch": epoch})
    assert status == 403 and "--actions" in doc["error"], doc
    assert meta(redis_server, job.name)["state"] == "running"
    assert dashboard.json("/api/jobs")["actions"] is False


def test_actions_need_confirmation_the_epoch_and_this_origin(redis_server, tmp_path):
    """Cancel, requeue and delete as an operator clicks them (the page's POSTs): refused
    without the confirmation, for another incarnation, from another origin; done with them,
    each in the event feed; a running job is never deleted."""
    d = Dashboard(redis_server.env(), "--actions")
    try:
        data, evil = xss_corpus(tmp_path)
        job = submit(redis_server, data, hide=evil)  # one task will be a dead letter
        epoch = meta(redis_server, job.name)["epoch"]
        assert d.json("/api/jobs")["actions"] is True
        d.until("/api/jobs", lambda doc: any(j["job"] == job.name for j in doc["jobs"]))
        url = f"/api/jobs/{job.name}"
        for body in (None, {}, {"confirm": job.name}, {"confirm": "other", "epoch": epoch},
                     {"epoch": epoch}):
            status, doc = d.post(f"{url}/cancel", body)
            assert status == 400 and "nothing was done" in doc["error"], (body, doc)
        status, doc = d.post(f"{url}/cancel", {"confirm": job.name, "epoch": "0123456789abcdef"})
        assert status == 409 and "not the one the page showed" in doc["error"], doc
        status, doc = d.post(f"{url}/cancel", {"confirm": job.name, "epoch": epoch},
                             {"Origin": "http://evil.example"})
        assert status == 403, doc
        status, doc = d.post(f"{url}/delete", {"confirm": job.name, "epoch": epoch})
        assert status == 409 and "cancel it first" in doc["error"], doc
        assert meta(redis_server, job.name)["state"] == "running"  # nothing happened so far

        with LocalCluster(1, redis_server, log_path=str(tmp_path / "w.log")):
            d.until("/api/jobs", lambda doc: any(j["job"] == job.name and j["state"] == "done"
                                                 for j in doc["jobs"]))
            assert meta(redis_server, job.name)["dead"] == "1"
            evil.with_name(evil.name + ".hidden").rename(evil)  # its cause fixed
            status, doc = d.post(f"{url}/requeue", {"confirm": job.name, "epoch": epoch},
                                 {"Origin": d.url})
            assert status == 200 and "1 dead letter(s) requeued" in doc["message"], doc
            d.until("/api/jobs", lambda doc: any(
                j["job"] == job.name and j["state"] == "done" and j["dead"] == 0
                for j in doc["jobs"]), timeout=60)
        status, doc = d.post(f"{url}/cancel", {"confirm": job.name, "epoch": epoch})
        assert status == 409 and "not running" in doc["error"], doc
        status, doc = d.post(f"{url}/delete", {"confirm": job.name, "epoch": epoch})
        assert status == 200 and doc["message"] == f"job {job.name} deleted", doc
        assert meta(redis_server, job.name) == {}
        status, doc = d.post(f"{url}/delete", {"confirm": job.name, "epoch": epoch})
        assert status == 404, doc
        texts = [e["text"] for e in d.json("/api/events")["events"] if e["kind"] == "operator"]
        assert any(f"{job.name}: 1 dead letter(s) requeued" in t for t in texts), texts
        assert any(f"job {job.name} deleted" in t for t in texts), texts
        assert sum("refused" in t for t in texts) >= 3, texts  # stale epoch, delete, cancel
    finally:
        d.stop()


# -- a real browser ------------------------------------------------------------------------------

@pytest.fixture
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian: apt-get install chromium "
                    "chromium-driver, or `make browser`)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must fetch nothing
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def test_in_a_browser(redis_server, dashboard, browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    data, evil = xss_corpus(tmp_path)
    xss_job = submit(redis_server, data, unlink=evil)
    job = submit(redis_server, make_corpus(tmp_path / "data"))
    browser.get(dashboard.url + "/")
    # (the page redraws its tables at every sample: an element found may be replaced before
    # it is read, StaleElementReferenceException; the wait then looks again)
    wait = WebDriverWait(browser, 60, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,))

    def state(name: str) -> str:
        cells = browser.find_elements(By.CSS_SELECTOR, f'tr[data-job="{name}"] td')
        return cells[1].text if len(cells) > 1 else ""
    wait.until(lambda b: state(job.name) == "running")
    with slow_cluster(redis_server, tmp_path):
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "tr[data-worker]"))
        wait.until(lambda b: state(job.name) == "done")
        wait.until(lambda b: state(xss_job.name) == "done")
    assert browser.find_element(By.ID, "redis-badge").text == "Redis up"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))

    # the job's page: its chart drawn from the samples
    browser.find_element(By.CSS_SELECTOR, f'tr[data-job="{job.name}"] a.job-link').click()
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#chart svg polyline"))
    # its timeline: a bar per accepted attempt, at least one per task, on the workers' lanes
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#timeline rect.attempt.done"))
               == len(job.tasks))
    # each accepted attempt: claimed -> counted, then its commit (the moment counting ended,
    # from the worker's commit, in the history)
    assert all("counted in" in t.get_attribute("textContent") for t in browser.find_elements(
        By.CSS_SELECTOR, "#timeline rect.attempt.done title"))
    wait.until(lambda b: "alpha" in b.find_element(By.ID, "top").text)
    assert browser.find_element(By.ID, "job-name").text == job.name
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard-job.png"))

    # the dead letter whose path is a script tag: shown as text, never run
    browser.get(f"{dashboard.url}/#job={xss_job.name}")
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "tr.dead-letter"))
    row = browser.find_element(By.CSS_SELECTOR, "tr.dead-letter")
    assert XSS + ".txt" in row.text
    assert browser.execute_script("return document.querySelectorAll('script').length") == 1
    assert not browser.execute_script(
        "return [...document.querySelectorAll('#dead *')].some(e => e.tagName === 'SCRIPT')")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - raises when no alert is open
    logs = [m for m in browser.get_log("browser") if m["level"] == "SEVERE"]
    assert not logs, logs  # no script error, no CSP violation


def test_an_action_in_the_browser_needs_its_confirmation(redis_server, browser, tmp_path):
    """The job page's Cancel button asks first: dismissed, nothing happens (the job runs on,
    no action in the feed); accepted, the job is cancelled and the page says so."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    d = Dashboard(redis_server.env(), "--actions")
    try:
        job = submit(redis_server, make_corpus(tmp_path / "data", files=1, lines=100))
        browser.get(f"{d.url}/#job={job.name}")
        wait = WebDriverWait(browser, 30, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException,))
        cancel = 'button[data-action="cancel"]'
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, cancel))[0].click()
        alert = wait.until(expected_conditions.alert_is_present())
        assert f"Cancel job {job.name}?" in alert.text
        alert.dismiss()
        time.sleep(1.0)  # (a request, had one been sent, would have been answered by now)
        assert meta(redis_server, job.name)["state"] == "running"
        assert not [e for e in d.json("/api/events")["events"] if e["kind"] == "operator"]
        assert browser.find_element(By.ID, "action-result").text == ""

        browser.find_element(By.CSS_SELECTOR, cancel).click()
        wait.until(expected_conditions.alert_is_present()).accept()
        wait.until(lambda b: b.find_element(By.ID, "action-result").text
                   == f"job {job.name} cancelled")
        assert meta(redis_server, job.name)["state"] == "cancelled"
        wait.until(lambda b: "cancelled" in b.find_element(By.ID, "job-stats").text)
        # a cancelled job offers delete (and no cancel)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, 'button[data-action="delete"]'))
        assert not browser.find_elements(By.CSS_SELECTOR, cancel)
        logs = [m for m in browser.get_log("browser") if m["level"] == "SEVERE"]
        assert not logs, logs
    finally:
        d.stop()


def test_a_chaos_timeline_in_the_browser(redis_server, browser, tmp_path):
    """The run the dashboard is for, watched in a browser: during a real job Redis is SIGKILLed
    and restarted from its snapshot (a rollback), and workers crash after counting half their
    attempts (each such task stolen after the 1.5 s claim timeout, the crashed worker started
    again). The job's page shows the restart as a marker on the timeline and the stolen
    attempts as bars of their own; the job ends done with its table equal to the oracle's; and
    a dashboard started afresh draws the same attempts, from the history in Redis. The
    screenshot is build/artifacts/dashboard-chaos.png (the README's docs/dashboard.png). The
    restart reaches that second dashboard too: a worker recorded it in the shared feed."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from wordcount.words import reference_counts

    data = make_corpus(tmp_path / "data")
    job = submit(redis_server, data)
    d = Dashboard(redis_server.env())
    try:
        browser.get(f"{d.url}/#job={job.name}")
        wait = WebDriverWait(browser, 90, poll_frequency=0.2,
                             ignored_exceptions=(StaleElementReferenceException,))
        flags = ["--slowdown", "40", "--stall-prob", "1", "--stall-max", "0.8",
                 "--claim-timeout", "1500", "--crash-at", "after-count", "--crash-prob", "0.5",
                 "--max-attempts", "30", "--speculate-factor", "0"]
        conn = connect(redis_server)
        killed: list[float] = []

        def kill_once() -> None:
            if not killed and client.progress(conn, job.name).done >= 4:
                time.sleep(1.2)  # `save 1 1`: a snapshot holds them
                redis_server.kill()
                redis_server.start()
                killed.append(time.time() * 1000)
        with LocalCluster(2, redis_server, options=WorkerOptions.parse(flags),
                          log_path=str(tmp_path / "workers.log")) as cluster:
            done = cluster.wait(conn, job, timeout_s=150, on_poll=kill_once)
            crashes = cluster.crashes
        assert killed and done.state == "done" and done.dead == 0, done
        assert crashes >= 1 and done.stolen >= 1, (crashes, done)
        expected = sum((reference_counts(p.read_bytes()) for p in sorted(data.iterdir())),
                       Counter())
        assert client.read_finished(conn, job).counts == expected  # exact, whole table
        conn.close()

        wait.until(lambda b: "done" in b.find_element(By.ID, "job-stats").text)
        wait.until(lambda b: b.find_element(By.ID, "check").text.startswith("passed: "))
        stolen = "#timeline rect.attempt.how-steal"
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, stolen))
        wait.until(lambda b: any(
            "Redis restarted" in (m.get_attribute("textContent") or "")
            for m in b.find_elements(By.CSS_SELECTOR, "#timeline line.marker")))
        bars = len(browser.find_elements(By.CSS_SELECTOR, "#timeline rect.attempt"))
        assert bars >= len(job.tasks) + 1  # every task's accepted attempt, and the stolen ones
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "dashboard-chaos.png"))
        before = d.json(f"/api/jobs/{job.name}")["timeline"]
        browser.get("about:blank")  # (its event stream closed before the dashboard stops)
    finally:
        d.stop()
    again = Dashboard(redis_server.env())
    try:
        browser.get(f"{again.url}/#job={job.name}")
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#timeline rect.attempt"))
                   == bars)
        page = again.json(f"/api/jobs/{job.name}")
        assert page["timeline"] == before
        assert browser.find_elements(By.CSS_SELECTOR, stolen)
        # the restart, as a worker recorded it in Redis (the shared feed): a marker for a
        # dashboard that never saw it happen
        starts = [m for m in page["markers"] if m["kind"] == "redis-start"]
        assert any(abs(m["t"] - killed[0]) < 3000 for m in starts), (killed, starts)
        wait.until(lambda b: any(
            "Redis started" in (m.get_attribute("textContent") or "")
            for m in b.find_elements(By.CSS_SELECTOR, "#timeline line.marker")))
        logs = [m for m in browser.get_log("browser") if m["level"] == "SEVERE"]
        assert not logs, logs
    finally:
        again.stop()


def test_the_clients_last_line_names_the_jobs_dashboard_page(redis_server, tmp_path):
    """In the compose clusters the client's environment has WORDCOUNT_DASHBOARD_URL: its last
    line names the job's page there (not with --json: stdout is the JSON document then)."""
    from wordcount.lab.clirun import wc

    data = make_corpus(tmp_path / "data", files=1, lines=50)
    env = {**redis_server.env(), "WORDCOUNT_DASHBOARD_URL": "http://127.0.0.1:8077/"}
    with LocalCluster(1, redis_server, log_path=str(tmp_path / "w.log")):
        p = wc("submit", str(data), "--job", "a.b_c-1", "--quiet", env=env, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines()[-1] == ("-- dashboard: http://127.0.0.1:8077/#job=a.b_c-1 "
                                             "(the job's timeline; live while the cluster runs)")
        j = wc("submit", str(data), "--job", "plain", "--json", env=env, timeout=60)
        assert j.returncode == 0 and "dashboard" not in j.stdout, j
        json.loads(j.stdout)


def test_each_redisraft_node_is_shown_and_a_killed_one_goes_down_and_up(raft_cluster):
    """On RedisRaft the Redis panel lists every node the URL names, each asked directly: a
    follower SIGKILLed shows DOWN (an event and a marker) while the cluster goes on, and up
    again after its restart."""
    d = Dashboard(raft_cluster.env())
    try:
        doc = d.until("/api/redis", lambda r: len(r.get("nodes") or []) == 3
                      and all(n["up"] for n in r["nodes"]), timeout=30)
        assert {n["node"] for n in doc["nodes"]} == {n.addr for n in raft_cluster.nodes}
        assert sum(n["role"] == "leader" for n in doc["nodes"]) == 1, doc["nodes"]
        # (INFO server raft, one call per node: the Raft fields and the server's together)
        assert all(n["run_id"] and int(n["commit_index"]) > 0
                   and int(n["snapshot_last_idx"]) >= 0 for n in doc["nodes"]), doc["nodes"]
        leader = raft_cluster.leader()
        victim = (leader + 1) % 3
        raft_cluster.kill(victim)
        down = d.until("/api/redis", lambda r: r["reachable"]
                       and sum(not n["up"] for n in r["nodes"]) == 1, timeout=30)
        assert sum(n["up"] for n in down["nodes"]) == 2
        raft_cluster.start(victim)
        d.until("/api/redis", lambda r: all(n["up"] for n in r.get("nodes") or []), timeout=30)
        kinds = [e["kind"] for e in d.json("/api/events")["events"]]
        assert kinds.count("node-down") == 1 and kinds.count("node-up") == 1, kinds
        assert kinds.index("node-down") < kinds.index("node-up")
    finally:
        d.stop()


def test_the_job_page_runs_the_self_check_and_it_can_fail(redis_server, dashboard, tmp_path):
    """A finished job watched by a page gets the client's end-to-end self-check: passed for a
    job as its workers left it; after one word's count is changed behind the protocol's back,
    a dashboard (started anew: a check runs once per finished incarnation) reports it broken."""
    job = submit(redis_server, make_corpus(tmp_path / "data", files=2, lines=200))
    with LocalCluster(1, redis_server, log_path=str(tmp_path / "w.log")):
        dashboard.until("/api/jobs", lambda d: any(j["job"] == job.name and j["state"] == "done"
                                                   for j in d["jobs"]))

    def checked(d: Dashboard) -> dict:
        d.until("/api/jobs", lambda doc: any(j["job"] == job.name for j in doc["jobs"]))
        stream = Stream(d.url, job.name)
        stream.start()
        try:
            doc = d.until(f"/api/jobs/{job.name}", lambda doc: doc.get("check"))
        finally:
            stream.stop.set()
        return doc["check"]
    good = checked(dashboard)
    assert good["ok"] and good["text"].startswith("passed: ") and good["figures"], good
    conn = connect(redis_server)
    conn.call(lambda r: r.zincrby(f"wc:{{{job.name}}}:counts", 1, "alpha"))
    conn.close()
    later = Dashboard(redis_server.env())
    try:
        bad = checked(later)
    finally:
        later.stop()
    assert not bad["ok"] and "self-check" in bad["text"], bad
