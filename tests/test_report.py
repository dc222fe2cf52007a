"""``llm2 report``: the page from a real archive, read while a run writes, and rendered in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm2.archive import Archive, RunInfo
from llm2.cli import main
from llm2.report.build import build_report
from llm2.tasks import load_task
from llm2.task_api.card import TaskCard
from llm2.tasks.preference.catalog import OBJECTIVES
from testkit import make_run as run_info  # this file's own make_run builds a whole archive

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
HOSTILE = "<script>alert('x')</script><img src=\"http://evil.example/x.png\">"

# status -> (stage, error) for the proposals of the test run
CONFIG = {"task": "preference-synthetic", "task_settings": {"beta": 0.05, "world_seed": 0, "label_noise": 0.2}}
CARD = TaskCard.of(load_task("preference-synthetic")).to_dict()
LAYERS = ("process_group", "pid_namespace", "network_namespace", "rlimits", "landlock", "unprivileged_user",
          "capabilities", "seccomp")
OUTCOMES = {"ok": ("done", None), "invalid": ("contract", "loss() takes 2 positional arguments but 5 were given"),
            "failed": ("probe", "the loss became NaN at step 12"), "timeout": ("train", "timed out after 60 s"),
            "duplicate": (None, None), "pending": (None, None)}


def make_run(run_dir: Path, status: str = "finished") -> list[int]:
    """A small archive through the Archive API: baselines, proposals of every status, held-out points.

    Candidate code is real catalog code (the loss shapes run it); a hostile name, thought and code comment check
    the escaping. Returns the candidate ids.
    """
    now = time.time()
    run = RunInfo(run_id="report-test", task="preference-synthetic", proposer="symbolic", model="",
                  config={**CONFIG, "generations": 3, "population": 3, "seeds": 2},
                  seeds={"proposer_seed": 0, "training_seeds": [0, 1], "world_seed": 0},
                  versions={"llm2": "0.1.0", "torch": torch_version()}, started_at=now - 125,
                  finished_at=None if status == "running" else now, status=status)
    ids = []
    with Archive.create(run_dir, run, CARD) as archive:
        archive.add_run_event("resumed", {"changed": {"generations": {"from": 2, "to": 3}}})
        for name, fitness in (("dpo", 0.90), ("hinge", 0.92), ("ipo", 0.83)):
            c = archive.add_candidate(generation=0, proposer="baseline", thought="", name=name,
                                      code=OBJECTIVES[name].code, status="baseline")
            archive.finish_candidate(c.id, status="baseline", stage="done", error=None, fitness=fitness,
                                     fitness_std=0.01, metrics={"reward": fitness, "kl": 6.0}, seconds=2.0,
                                     feedback=None, sandbox=LAYERS)
            ids.append(c.id)
        proposals = [(1, "discopop", "discopop", "ok", 0.93), (1, "cell", "cell", "ok", 0.91),
                     (1, "two_args", "dpo", "invalid", None), (2, "aql", "aql", "ok", 0.95),
                     (2, "slow", "dpo", "timeout", None), (2, "nan_loss", "padll", "failed", None),
                     (3, "again", "cell", "duplicate", None), (3, "pfl", "pfl", "pending", None),
                     (3, HOSTILE, "dbaql", "ok", 0.5)]
        for generation, name, source, outcome, fitness in proposals:
            code = OBJECTIVES[source].code + f"\n# {HOSTILE}\n"
            c = archive.add_candidate(generation=generation, proposer="symbolic", thought=f"Try {name}. {HOSTILE}",
                                      name=name, code=code, prompt_tokens=120, completion_tokens=80, cost_usd=0.001,
                                      reply_events=("stripped code fences",) if name == "cell" else ())
            ids.append(c.id)
            if outcome == "pending":
                continue
            stage, error = OUTCOMES[outcome]
            archive.finish_candidate(c.id, status=outcome, stage=stage, error=error, fitness=fitness,
                                     fitness_std=0.01 if fitness else None,
                                     metrics={"reward": fitness, "kl": 5.0} if fitness else {}, seconds=3.0,
                                     feedback=f"Fitness {fitness}. {HOSTILE}",
                                     sandbox=LAYERS if outcome != "duplicate" else ())
        for name, bonus in (("dpo", 0.0), ("aql", 0.02)):
            for beta, reward, kl in ((0.01, 0.95, 12.0), (0.05, 0.9, 6.0), (0.5, 0.6, 1.0)):
                for seed in (0, 1):
                    archive.add_evaluation(candidate_name=name, code_hash="h", suite="heldout",
                                           setting={"beta": beta, "seed": seed, "world_seed": 0, "label_noise": 0.2},
                                           fitness=reward + bonus + 0.01 * seed, seconds=1.0, status="ok",
                                           error=None, metrics={"kl": kl + 0.3 * seed})
    return ids


def torch_version() -> str:
    import torch

    return torch.__version__


class PageScan(HTMLParser):
    """Every URL-bearing attribute, every candidate row, and the body's image-check marks."""

    URL_ATTRIBUTES = {"src", "href", "srcset", "action", "poster", "data", "formaction", "background"}

    def __init__(self, text: str):
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.candidate_ids: list[int] = []
        self.body: dict[str, str] = {}
        self.images: list[dict[str, str]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.urls += [(tag, k, v or "") for k, v in attrs if k in self.URL_ATTRIBUTES]
        if tag == "details" and "data-candidate-id" in attributes:
            self.candidate_ids.append(int(attributes["data-candidate-id"]))
        if tag == "body":
            self.body = attributes
        if tag == "img":
            self.images.append(attributes)


def external_urls(scan: PageScan, text: str) -> list[str]:
    """URLs that would leave the page's own folder: any scheme but data:, or protocol-relative."""
    found = [v for _, _, v in scan.urls if v and not v.startswith(("data:", "#"))
             and (re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", v) or v.startswith("//") or "/" in v)]
    found += re.findall(r"url\(\s*['\"]?(?!data:)([^)'\"]+)", text)  # CSS
    found += re.findall(r"@import", text)
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    ids = make_run(run_dir)
    index = build_report(run_dir)
    return run_dir, ids, index, index.read_text(encoding="utf-8")


def test_report_lists_every_candidate_with_its_details(report):
    run_dir, ids, index, text = report
    assert index == run_dir / "report" / "index.html"
    scan = PageScan(text)
    assert sorted(scan.candidate_ids) == sorted(ids)
    with Archive.open(run_dir, readonly=True) as archive:
        for candidate in archive.candidates():
            if candidate.status == "ok" and candidate.name != HOSTILE:
                assert f"<span class=\"name\">{candidate.name}</span>" in text
    # Scored rows first, best first: aql 0.95, discopop 0.93, hinge 0.92 (baseline), cell, dpo, ipo, hostile.
    names = re.findall(r"<span class=\"name\">([^<]*)</span>", text)
    assert names[:6] == ["aql", "discopop", "hinge", "cell", "dpo", "ipo"]
    assert "0.9500 ± 0.0100" in text and "invalid at contract" in text and "timeout at train" in text
    assert "Feedback the proposer got" in text and "stripped code fences" in text


def test_report_escapes_all_candidate_text(report):
    _, _, _, text = report
    assert "<script>alert" not in text and "evil.example/x.png\">" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert text.count("<script>") == 1  # the page's own image check, nothing else
    scan = PageScan(text)
    assert external_urls(scan, text) == []
    assert len(scan.images) == 4 and all(img["src"].startswith("data:image/png;base64,") for img in scan.images)


def test_report_shows_run_facts_figures_and_failure_reasons(report):
    run_dir, _, _, text = report
    for fact in ("report-test", "preference-synthetic", "symbolic", "2 min 05 s", "1,080 prompt + 720 completion",
                 "0.0090 USD", "training_seeds", torch_version(), "β = 0.05, world 0", "gold reward",
                 "capabilities, landlock, network_namespace, pid_namespace, process_group, rlimits, seccomp, "
                 "unprivileged_user in all 10 evaluated candidates", "resumed"):
        assert fact in text, fact
    assert "aql: on or above the frontier at all 3 points of dpo" in text
    for figure in ("discovery.png", "shapes.png", "frontier.png", "failures.png"):
        assert (run_dir / "report" / figure).stat().st_size > 10_000
    assert "No reward–KL points" not in text
    assert "loss() takes N positional arguments but N were given" in text  # the reason, numbers grouped
    assert "4 of 9 proposals were rejected or failed" not in text
    assert "3 of 9 proposals were rejected or failed" in text


def test_report_without_evaluations_says_how_to_get_the_frontier(tmp_path):
    run_dir = tmp_path / "run"
    run = run_info(run_id="empty", config=CONFIG, seeds={}, versions={}, started_at=time.time())
    with Archive.create(run_dir, run, CARD):
        pass
    text = build_report(run_dir).read_text(encoding="utf-8")
    assert f"llm2 heldout {run_dir}" in text
    assert "No candidate has a score yet, so only dpo is drawn" in text
    assert "The run is marked as running" in text
    scan = PageScan(text)
    assert scan.candidate_ids == [] and len(scan.images) == 1  # the dpo shape only


def test_report_while_the_run_writes(tmp_path):
    run_dir = tmp_path / "run"
    ids = make_run(run_dir, status="running")
    writer = Archive.open(run_dir)  # as the discovery loop holds it
    stop = threading.Event()
    added = []

    def keep_writing():
        while not stop.is_set():
            added.append(writer.add_candidate(generation=4, proposer="symbolic", thought="", name=f"late{len(added)}",
                                              code=OBJECTIVES["hinge"].code).id)
            time.sleep(0.05)

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        text = build_report(run_dir).read_text(encoding="utf-8")
    finally:
        stop.set()
        thread.join()
    listed = set(PageScan(text).candidate_ids)
    assert set(ids) <= listed and listed <= set(ids) | set(added)
    pending = int(re.search(r"scored, (\d+) pending", text).group(1))
    assert added and pending >= 1 and "The run is marked as running" in text
    writer.add_candidate(generation=5, proposer="symbolic", thought="", name="after", code="x = 1")  # not blocked
    writer.close()


def test_report_command_and_its_errors(tmp_path, report):
    run_dir = report[0]
    result = CliRunner().invoke(main, ["report", str(run_dir), "--top", "2"])
    assert result.exit_code == 0, result.output
    assert str(run_dir / "report" / "index.html") in result.output
    missing = CliRunner().invoke(main, ["report", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no llm2 archive" in missing.output and "Traceback" not in missing.output
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "archive.sqlite").write_text("not a database")
    junk = CliRunner().invoke(main, ["report", str(tmp_path / "junk")])
    assert junk.exit_code == 2 and "not a readable llm2 archive" in junk.output


# ---- headless Chromium -----------------------------------------------------------------------------------------

class RecordingServer:
    """Serves a folder on 127.0.0.1 and records every request line it gets: as a web server for the page, and as
    the browser's HTTP proxy, so that any request to another host would arrive here too and be recorded."""

    def __init__(self, folder: Path):
        self.requests: list[str] = []
        requests = self.requests

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def parse_request(self):
                ok = super().parse_request()
                requests.append(f"{self.command} {self.path}")
                return ok

            def do_CONNECT(self):  # an https request through the proxy: refuse it, it is recorded already
                self.send_error(403)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "RecordingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


# Chromium started so that it sends nothing of its own: each flag turns off one source of background requests
# seen from Debian's chromium (component and extension updates, field trials, safe browsing, sign-in and sync,
# default apps, metrics and crash reports, domain reliability, network time, optimisation hints and the on-device
# model manifest, first-run pages). With these, every request that reaches the recorder is the page's own.
QUIET_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-default-apps", "--disable-background-networking", "--disable-component-update",
    "--disable-component-extensions-with-background-pages", "--disable-extensions", "--disable-sync",
    "--allow-browser-signin=false", "--disable-field-trial-config", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--safebrowsing-disable-auto-update", "--metrics-recording-only",
    "--disable-breakpad", "--no-pings", "--password-store=basic",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,OptimizationHintsFetching,"
    "OptimizationGuideModelDownloading,Translate,MediaRouter,AutofillServerCommunication",
)
# The profile's own switches: spell checking off (it downloads a dictionary at start).
QUIET_PREFERENCES = '{"browser": {"enable_spellchecking": false}, "spellcheck": {"dictionaries": []}}'


@contextmanager
def closed_port():
    """A loopback port that is bound but never listens, so a connection to it is refused on this machine."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def chromium(url: str, profile: Path, proxy_port: int, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium on a fresh profile, every request outside loopback sent to the recording proxy."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: the report's browser test needs Debian's chromium "
                    "(apt-get install -y chromium)")
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(QUIET_PREFERENCES, encoding="utf-8")
    (profile / "no-models").mkdir()
    with closed_port() as refused:
        # The account check (ListAccounts) has no switch of its own: its service address, and Google's base
        # address for the services that build on it, move to a port on this machine that refuses; the on-device
        # model manifest is read from an empty folder instead of fetched.
        command = [CHROMIUM, *QUIET_FLAGS, f"--user-data-dir={profile}",
                   f"--optimization-guide-manifest-override={profile / 'no-models'}",
                   f"--gaia-url=http://127.0.0.1:{refused}/", f"--google-base-url=http://127.0.0.1:{refused}/",
                   f"--proxy-server=http://127.0.0.1:{proxy_port}",
                   *extra, url]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)


def split_requests(requests: list[str]) -> tuple[list[str], list[str]]:
    """(requests for the local server's own paths, hosts of the requests that came in as a proxy)."""
    local, hosts = [], []
    for line in requests:
        method, target = line.split(" ", 1)
        if target.startswith("/"):
            local.append(line)
        else:  # "CONNECT host:443" or "GET http://host/path"
            hosts.append(re.sub(r"^[a-z]+://", "", target).split("/")[0].split(":")[0])
    return local, hosts


def check_in_browser(run_dir: Path, tmp_path: Path, expected_ids: list[int], screenshot_name: str) -> None:
    folder = run_dir / "report"
    with RecordingServer(folder) as server:
        url = f"http://127.0.0.1:{server.port}/index.html"
        dumped = chromium(url, tmp_path / "profile-dom", server.port, "--virtual-time-budget=10000", "--dump-dom")
        assert dumped.returncode == 0, dumped.stderr[-2000:]
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / screenshot_name
        screenshot.unlink(missing_ok=True)
        shot = chromium(url, tmp_path / "profile-shot", server.port, "--window-size=1280,5200", "--hide-scrollbars",
                        f"--screenshot={screenshot}")
        assert shot.returncode == 0, shot.stderr[-2000:]
    dom = dumped.stdout
    scan = PageScan(dom)
    # The page's own script marks each image once the page has loaded.
    assert scan.body.get("data-images-checked") == str(len(scan.images)) and scan.images
    assert scan.body.get("data-images-broken") == "0"
    assert all(img.get("data-loaded") == "yes" for img in scan.images)
    assert sorted(scan.candidate_ids) == sorted(expected_ids)
    assert external_urls(scan, dom) == []
    # Both browser runs asked for the page and for nothing else, here or (through the proxy) elsewhere; the
    # message lists every request that arrived.
    assert server.requests == ["GET /index.html", "GET /index.html"], server.requests
    assert screenshot.stat().st_size > 50_000


def test_the_browser_check_sees_external_requests(tmp_path):
    """The recorder must notice a page that loads from elsewhere, or its silence above would prove nothing."""
    folder = tmp_path / "page"
    folder.mkdir()
    (folder / "index.html").write_text("<html><body><img src=\"http://evil.example/x.png\">"
                                       "<link rel=\"stylesheet\" href=\"https://fonts.example.com/a.css\">"
                                       "<img src=\"local.png\"></body></html>")
    with RecordingServer(folder) as server:
        url = f"http://127.0.0.1:{server.port}/index.html"
        assert chromium(url, tmp_path / "profile", server.port, "--virtual-time-budget=5000",
                        "--dump-dom").returncode == 0
    local, hosts = split_requests(server.requests)
    assert "GET /local.png" in local
    assert {"evil.example", "fonts.example.com"} <= set(hosts)


def test_report_renders_in_headless_chromium(report, tmp_path):
    run_dir, ids, _, _ = report
    check_in_browser(run_dir, tmp_path, ids, "report-screenshot.png")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_report_of_a_real_classification_discovery_shows_the_tasks_own_figures(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    llm2 = shutil.which("llm2", path=str(Path(os.sys.executable).parent)) or "llm2"
    # a third of the default epochs: the figures and the end-of-run words are the same work at any length
    discovered = subprocess.run([llm2, "discover", "--task", "classification", "-o", "epochs=20", "--generations", "2",
                                 "--population", "2", "--seeds", "1", "--run-dir", str(run_dir)], capture_output=True,
                                text=True, timeout=800, env=env)
    assert discovered.returncode == 0, discovered.stderr[-3000:]
    assert f"llm2 report {run_dir}" in discovered.stdout and "beats cross_entropy" in discovered.stdout
    reported = subprocess.run([llm2, "report", str(run_dir)], capture_output=True, text=True, timeout=300, env=env)
    assert reported.returncode == 0, reported.stderr[-3000:]
    page = (run_dir / "report" / "index.html").read_text(encoding="utf-8")
    assert "Loss f(p) and its slope for the best candidates beside cross_entropy" in page
    assert "Loss shapes" not in page and "Reward–KL" not in page  # the preference task's figures are not its own
    assert "test accuracy" in page
    with Archive.open(run_dir, readonly=True) as archive:
        candidates = archive.candidates()
    assert sum(not c.is_baseline for c in candidates) >= 4
    check_in_browser(run_dir, tmp_path, [c.id for c in candidates], "report-discovery-screenshot.png")
