"""Pictures in the prompt budget and under several proposers, against real local HTTP servers.

A picture costs the server prompt tokens too: it is counted in the budget (the tile estimate, or the proposer's
``image_tokens``), left out before best or recent results are, dropped first when a server refuses a prompt that
carried it as too long, and every request records whether it carried one. Each proposer of a run keeps its own
"this server refuses images" decision.
"""

from __future__ import annotations

import base64
from pathlib import Path

from fake_openai_server import FakeOpenAIServer, Received, completion, error, good_reply_json
from test_discovery import run_discovery
from testkit import invoke_llm2

from llm2.archive import Archive
from llm2.curves_image import curves_png
from llm2.discovery import curve_images
from llm2.discovery.bandit import ProposerBandit
from llm2.discovery.config import DiscoveryConfig
from llm2.proposers.openai import OpenAIProposer

CURVED_TASK = f"{Path(__file__).parent / 'curved_example_task.py'}:CurvedRegression"
IMAGE_TOKENS = 300  # what the test server counts for one picture, told to llm2 with --image-tokens
MAX_TOKENS = 200
PADDING = "An idea worth trying on data with outliers. " * 4  # each turn long enough to move the budget


def robust_reply(number: int) -> str:
    code = f"def robust_{number}(prediction, target):\n    return {1 + number / 10} * (prediction - target).abs()\n"
    return good_reply_json(f"robust_{number}", thought=PADDING, code=code)


def pictures(received: Received) -> list[bytes]:
    found = []
    for message in received.body["messages"]:
        if isinstance(message["content"], list):
            found += [base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
                      for p in message["content"] if p["type"] == "image_url"]
    return found


def words(received: Received) -> list[str]:
    return [m["content"] if isinstance(m["content"], str) else "".join(
        p["text"] for p in m["content"] if p["type"] == "text") for m in received.body["messages"]]


class SmallVisionContext:
    """Counts a prompt as characters / 4 plus IMAGE_TOKENS a picture, and refuses, stating its context, a prompt
    that leaves no room for max_tokens. Its context is set from the first two prompts (the opening, then the opening
    and one turn, of t tokens): the opening + 1.5 t + one picture + the reply, so the second prompt fits with its
    picture, the third only without it."""

    def __init__(self) -> None:
        self.texts: list[int] = []
        self.limit: int | None = None
        self.accepted: list[tuple[int, int]] = []  # (text tokens, pictures) of each prompt answered

    def __call__(self, received: Received) -> object:
        text = sum(len(w) for w in words(received)) // 4
        self.texts.append(text)
        if self.limit is None and len(self.texts) == 2:
            turn = self.texts[1] - self.texts[0]
            self.limit = self.texts[0] + turn * 3 // 2 + IMAGE_TOKENS + MAX_TOKENS
        count = len(pictures(received))
        if self.limit is not None and text + count * IMAGE_TOKENS + MAX_TOKENS > self.limit:
            return error(400, f"This model's maximum context length is {self.limit} tokens. However, you requested "
                              f"{text + count * IMAGE_TOKENS + MAX_TOKENS} tokens. Please reduce the length.")
        self.accepted.append((text, count))
        return completion(robust_reply(len(self.accepted)))


def test_the_picture_counts_in_the_budget_and_goes_first(tmp_path):
    server_rule = SmallVisionContext()
    run_dir = tmp_path / "run"
    with FakeOpenAIServer([], default=server_rule) as server:
        invoke_llm2("discover", "--task", CURVED_TASK, "--proposer", "openai", "--model", "fake-model",
                    "--base-url", server.base_url, "--api-key-env", "NO_SUCH_KEY", "--send-curve-images",
                    "--image-tokens", str(IMAGE_TOKENS), "--max-tokens", str(MAX_TOKENS), "--history", "full",
                    "--generations", "6", "--population", "1", "--seeds", "1", "--run-dir", str(run_dir))
    received = server.requests
    assert all(text + count * IMAGE_TOKENS + MAX_TOKENS <= server_rule.limit for text, count in server_rule.accepted)
    assert server_rule.accepted[1][1] == 1  # the second prompt went with its picture
    with Archive.open(run_dir, readonly=True) as archive:
        assert archive.run.status == "finished"
        assert all(c.code for c in archive.candidates() if c.generation > 0)  # no proposal lost
        requests = archive.requests()
        assert len(requests) == len(received)
        assert all("images_sent" in r.request for r in requests)  # each one says whether it carried a picture
        carried = [r for r in requests if r.request["images_sent"]]
        assert carried and all(r.request["images"][0]["tokens"] == IMAGE_TOKENS for r in carried)
        # the first refusal was of a prompt with its picture: the same words went again, without it
        refused = next(i for i, r in enumerate(requests) if r.error)
        assert "maximum context length" in requests[refused].error and requests[refused].request["images_sent"] == 1
        again = requests[refused + 1]
        assert again.request["images_sent"] == 0 and not pictures(received[refused + 1])
        assert words(received[refused + 1]) == words(received[refused])
        assert "refused the prompt with it" in again.request["images_left_out"][0]["reason"]
        # from then on the budget is known: a picture that would push results out is left out, and recorded so
        later = [r.request for r in requests[refused + 2:]]
        assert later and all(not r["images_sent"] for r in later)
        assert any("over the prompt budget" in r["images_left_out"][0]["reason"] for r in later)
        shrunk = [e.detail for e in archive.run_events() if e.kind == "prompt_shrunk"]
        assert shrunk[0]["image_tokens"] == IMAGE_TOKENS
        assert shrunk[0]["budget_tokens"] == server_rule.limit - MAX_TOKENS


class RefusesImages:
    """Answers words with a proposal and any picture with a 400, as a text-only model does."""

    def __init__(self, log: list[str], label: str) -> None:
        self.log, self.label, self.answered = log, label, 0

    def __call__(self, received: Received) -> object:
        if pictures(received):
            self.log.append(f"{self.label}:refused")
            return error(400, "Image input is not supported for this model.")
        self.log.append(f"{self.label}:words")
        self.answered += 1
        return completion(robust_reply(100 + self.answered))


class AcceptsImages:
    def __init__(self, log: list[str], label: str) -> None:
        self.log, self.label, self.answered = log, label, 0

    def __call__(self, received: Received) -> object:
        self.log.append(f"{self.label}:{'image' if pictures(received) else 'words'}")
        self.answered += 1
        return completion(robust_reply(self.answered))


def test_one_proposer_refusing_images_does_not_stop_them_to_another(tmp_path):
    """Two proposers (the bandit) and two islands in one run; one server reads pictures, the other refuses them."""
    log: list[str] = []
    # a context that holds everything: the pictures go through the budget (counted) and are never left out for it
    config = DiscoveryConfig(task=CURVED_TASK, proposer="openai", generations=4, population=2, islands=2, seeds=1,
                             context_tokens=100_000, proposer_options={"model": "vision", "images": True},
                             more_proposers=("openai:text",))
    with FakeOpenAIServer([], default=AcceptsImages(log, "vision"), models=["vision"]) as vision, \
            FakeOpenAIServer([], default=RefusesImages(log, "text"), models=["text"]) as text:
        # equal prices and equal usage: the bandit's rewards are the proposals' gains alone, so both arms are asked
        arms = {label: OpenAIProposer(label.split(":")[1], base_url=server.base_url, api_key_env="NO_SUCH_KEY",
                                      images=True, price_prompt_per_1k=0.001)
                for label, server in (("openai:vision", vision), ("openai:text", text))}
        archive, summary = run_discovery(tmp_path, config, ProposerBandit(arms))
    assert summary.status == "finished"
    assert log[0] == "vision:words"  # the first proposal had no curves to show yet
    assert log.count("text:refused") == 1  # refused once, then words for the rest of the run
    after = log[log.index("text:refused") + 1:]
    assert "vision:image" in after and "text:words" in after  # the other one kept its pictures
    assert not arms["openai:text"].accepts_images and arms["openai:vision"].accepts_images
    requests = archive.requests()
    by_label = {label: [r.request for r in requests if r.request["proposer"] == label] for label in arms}
    refusal = next(r for r in by_label["openai:text"] if r.get("images_left_out"))
    assert refusal["images_sent"] == 0 and "refused image parts" in refusal["images_left_out"][0]["reason"]
    assert all(r["images_sent"] == 0 for r in by_label["openai:text"])
    shown = [r["images"][0] for r in by_label["openai:vision"] if r["images_sent"]]
    assert shown and all(picture["tokens"] == 85 + 170 for picture in shown)  # one tile, counted in the budget
    # each island is shown its own latest candidate's curves, not the run's latest: two pictures of one generation
    # show two candidates
    shown_by_generation: dict[int, list[str]] = {}
    for r in requests:
        if r.request["images_sent"]:
            generation = archive.candidate(r.candidate_id).generation
            shown_by_generation.setdefault(generation, []).append(r.request["images"][0]["caption"])
    both = [captions for captions in shown_by_generation.values() if len(captions) == 2]
    assert both and all(len(set(captions)) == 2 for captions in both)


def test_a_pictures_tokens_follow_the_tile_rule_unless_the_proposer_says():
    png = curves_png({"step": [0.0, 1.0, 2.0], "loss": [1.0, 0.5, 0.2]}, "t")
    width, height = curve_images.png_size(png)
    assert 0 < width <= 512 and 0 < height <= 512
    assert curve_images.image_tokens(png) == 85 + 170  # one tile
    assert curve_images.image_tokens(png, per_image=1000) == 1000
    assert curve_images.image_tokens(b"not a png") == 85

    def sized(width: int, height: int) -> bytes:
        return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big")

    assert curve_images.image_tokens(sized(2048, 4096)) == 85 + 170 * 6  # 1024 x 2048, then 768 x 1536: 2 x 3 tiles
    assert curve_images.image_tokens(sized(1000, 300)) == 85 + 170 * 2  # small enough: as it is, 2 x 1 tiles


def test_image_tokens_need_pictures_to_count(tmp_path):
    from click.testing import CliRunner

    from llm2.cli import main

    result = CliRunner().invoke(main, ["discover", "--proposer", "openai", "--model", "m", "--image-tokens", "100",
                                       "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--image-tokens counts the pictures --send-curve-images sends" in result.output
    assert not (tmp_path / "run").exists()
