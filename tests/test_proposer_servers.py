"""Several proposers, each at its own server with its own model and key, named on the command line
(``--proposer openai:MODEL@URL``) or in a ``--proposer-config`` file; recorded, so ``--resume`` asks the same servers.
The command runs as a subprocess against two real local HTTP servers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from fake_openai_server import FakeOpenAIServer, Received, completion, good_reply_json
from testkit import LLM2

from llm2.archive import Archive
from llm2.cli import main

EXAMPLE_TASK = f"{Path(__file__).parent / 'example_task.py'}:RobustRegression"


class Answering:
    """A server of one model: a robust loss per request, each with its own scale; remembers what it was sent."""

    def __init__(self, model: str) -> None:
        self.model, self.seen = model, []

    def __call__(self, received: Received) -> object:
        self.seen.append((received.body["model"], received.headers.get("authorization")))
        number = len(self.seen)
        name = f"{self.model}_{number}"
        code = f"def {name}(prediction, target):\n    return {number}.5 * (prediction - target).abs()\n"
        return completion(good_reply_json(name, code=code), model=self.model)


def llm2(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*LLM2, "discover", *arguments], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_two_proposers_at_two_servers_each_with_its_model_and_key(tmp_path):
    alpha, beta = Answering("alpha"), Answering("beta")
    run_dir, keys = tmp_path / "run", {"ALPHA_KEY": "key-of-alpha", "BETA_KEY": "key-of-beta"}
    with FakeOpenAIServer([], default=alpha, models=["alpha"]) as alpha_server, \
            FakeOpenAIServer([], default=beta, models=["beta"]) as beta_server:
        config = tmp_path / "proposers.toml"
        config.write_text(f'[[proposer]]\nname = "openai"\nmodel = "beta"\nbase_url = "{beta_server.base_url}"\n'
                          'api_key_env = "BETA_KEY"\nmax_tokens = 300\n')
        first = llm2("--task", EXAMPLE_TASK, "--proposer", f"openai:alpha@{alpha_server.base_url}",
                     "--api-key-env", "ALPHA_KEY", "--proposer-config", str(config), "--generations", "2",
                     "--population", "1", "--seeds", "1", "--workers", "1", "--run-dir", str(run_dir), env=keys)
        assert first.returncode == 0, first.stderr[-2000:]
        assert "proposers openai:alpha, openai:beta" in first.stderr
        # each server was asked, for its own model, with its own key
        assert alpha.seen == [("alpha", "Bearer key-of-alpha")] and beta.seen == [("beta", "Bearer key-of-beta")]
        assert beta_server.requests[0].body["max_tokens"] == 300 and "max_tokens" not in alpha_server.requests[0].body

        resumed = llm2("--run-dir", str(run_dir), "--resume", "--generations", "4", env=keys)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(alpha.seen) + len(beta.seen) == 4  # the resumed run asked the recorded servers, nothing else given
    assert set(alpha.seen) == {("alpha", "Bearer key-of-alpha")} and set(beta.seen) == {("beta", "Bearer key-of-beta")}
    with Archive.open(run_dir, readonly=True) as archive:
        recorded = archive.run.config
        writers = [c.proposer for c in archive.candidates() if c.generation > 0]
        requests = [(r.request["proposer"], r.request["model"]) for r in archive.requests()]
    assert recorded["proposer_options"]["base_url"] == alpha_server.base_url
    assert recorded["more_proposers"] == ["openai:beta"]
    assert recorded["more_proposer_options"] == {"openai:beta": {
        "model": "beta", "base_url": beta_server.base_url, "api_key_env": "BETA_KEY", "max_tokens": 300}}
    assert "key-of" not in json.dumps(recorded)  # the keys' names are recorded, never the keys
    assert writers[:2] == ["openai:alpha", "openai:beta"] and len(writers) == 4
    assert all(label == f"openai:{model}" for label, model in requests), requests


def test_each_server_is_checked_before_the_run_and_a_wrong_one_named(tmp_path):
    from fake_openai_server import error

    run_dir = tmp_path / "run"
    with FakeOpenAIServer([], default=Answering("alpha"), models=["alpha"]) as alpha_server, \
            FakeOpenAIServer([], default=error(404, "The model 'beta' does not exist"), models=["gamma"]) as beta_server:
        result = CliRunner().invoke(main, [
            "discover", "--task", EXAMPLE_TASK, "--proposer", f"openai:alpha@{alpha_server.base_url}",
            "--proposer", f"openai:beta@{beta_server.base_url}", "--api-key-env", "NO_SUCH_KEY", "--seeds", "1",
            "--workers", "1", "--run-dir", str(run_dir)])
        assert result.exit_code == 3, result.output[-2000:]
        assert "openai:beta: the model 'beta' does not answer" in result.output and "Traceback" not in result.output
        assert alpha_server.requests == [] and len(alpha_server.listing_requests) == 1  # checked, nothing asked
    with Archive.open(run_dir, readonly=True) as archive:
        assert archive.candidates() == []  # stopped before the baselines were measured


def test_the_same_model_at_two_servers_gets_two_labels(tmp_path):
    from llm2.commands.discover_proposers import choose_proposers

    cli = dict(model=None, base_url=None, api_key_env=None, replay=None, seed=0, max_cost=None, price_prompt=None,
               price_completion=None, request_timeout=None, max_tokens=None, images=False, image_tokens=None)
    chosen = choose_proposers(("openai:m@http://a:8000/v1", "openai:m@http://b:8000/v1", "openai:n"), None, cli,
                              None)
    assert (chosen.first, chosen.first_options) == ("openai", {"model": "m", "base_url": "http://a:8000/v1"})
    assert chosen.more == ("openai:m@http://b:8000/v1", "openai:n")  # the shared-options form keeps its label
    assert chosen.more_options == {"openai:m@http://b:8000/v1": {"model": "m", "base_url": "http://b:8000/v1"}}

    # the first may name its file or model too; a JSON file lists entries as TOML's tables do, the command line's
    # options their defaults
    listing = tmp_path / "proposers.json"
    listing.write_text(json.dumps([{"name": "openai", "model": "big", "base_url": "https://api.example/v1",
                                    "api_key_env": "BIG_KEY"}, {"name": "symbolic"}]))
    chosen = choose_proposers(("replay:r.jsonl",), listing, {**cli, "request_timeout": 30.0}, None)
    assert (chosen.first, chosen.first_options) == ("replay", {"path": "r.jsonl"})
    assert chosen.more == ("openai:big", "symbolic")
    assert chosen.more_options == {"openai:big": {"model": "big", "base_url": "https://api.example/v1",
                                                  "api_key_env": "BIG_KEY", "request_timeout_s": 30.0},
                                   "symbolic": {"seed": 0}}


def toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "proposers.toml"
    path.write_text(text)
    return str(path)


BAD = [
    (lambda p: ["--proposer", "openai:m@localhost:8000"], "is not an http(s) URL"),
    (lambda p: ["--proposer", "hf:m@http://localhost:8000/v1"], "only openai proposers have a server"),
    (lambda p: ["--proposer", "openai:m@"], "expected NAME, NAME:VALUE or openai:MODEL@URL"),
    (lambda p: ["--proposer", "openai:m@http://a/v1", "--model", "n"], "names its model; drop --model"),
    (lambda p: ["--proposer-config", str(p / "none.toml")], "cannot be read"),
    (lambda p: ["--proposer-config", toml(p, "[[proposer]\nname = 1")], "not valid TOML"),
    (lambda p: ["--proposer-config", toml(p, "[[proposer]]\nname = 'openai'\nmodel = 'm'\ncolour = 'red'\n")],
     "proposer 1: unknown key(s) colour"),
    (lambda p: ["--proposer-config", toml(p, "[[proposer]]\nname = 'openai'\n")], "proposer 1: openai needs model"),
    (lambda p: ["--proposer-config", toml(p, "[[proposer]]\nname = 'openai'\nmodel = 'm'\nprice_prompt = -1\n")],
     "price_prompt must be at least 0"),
    (lambda p: ["--proposer-config", toml(p, "[[proposer]]\nname = 'openai'\nmodel = 'm'\nmax_tokens = '9'\n")],
     "max_tokens must be a whole number"),
    (lambda p: ["--proposer-config", toml(p, "[[proposer]]\nname = 'replay'\nreplay = 'r.jsonl'\n"
                                             "base_url = 'http://a/v1'\n")], "only openai proposers have a server"),
    (lambda p: ["--proposer-config", toml(p, "[[proposer]]\nname = 'symbolic'\ncontext_tokens = 4096\n")],
     "only openai proposers take context_tokens"),
    (lambda p: ["--proposer-config", toml(p, "[[proposer]]\nname = 'openai'\nmodel = 'm'\ncontext_tokens = 10\n")],
     "context_tokens must be at least 64"),
    (lambda p: ["--proposer-config", toml(p, "title = 'x'\n")], "unknown key(s) title"),
    (lambda p: ["--proposer-config", toml(p, "[[proposer]]\nname = 'openai:m'\n")], "needs a name such as openai"),
    (lambda p: ["--proposer-config", toml(p, "[[proposer]]\nname = 'openai'\nmodel = 'm'\nrequest_timeout = nan\n")],
     "request_timeout must be a finite number"),
    (lambda p: ["--proposer", "openai:m", "--proposer-config", toml(p, "[[proposer]]\nname = 'openai'\nmodel = 'm'\n")],
     "proposer openai:m is given twice"),
]


@pytest.mark.parametrize("arguments, reason", BAD)
def test_a_bad_proposer_is_one_line_exit_2_and_nothing_made(tmp_path, arguments, reason):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["discover", "--task", EXAMPLE_TASK, "--run-dir", str(run_dir),
                                       *arguments(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and "Traceback" not in result.output, result.output
    assert not run_dir.exists()


def test_a_resumed_run_keeps_its_proposer_config(tmp_path):
    result = CliRunner().invoke(main, ["discover", "--run-dir", str(tmp_path), "--resume", "--proposer-config",
                                       toml(tmp_path, "[[proposer]]\nname = 'symbolic'\n")])
    assert result.exit_code == 2 and "keeps its proposers" in result.output
