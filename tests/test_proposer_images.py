"""Pictures to proposers that accept them: the OpenAI-compatible proposer with ``images=True`` sends a request's
pictures as image parts of its last user message (PNG data URLs), over real HTTP; without it, the words only."""

from __future__ import annotations

import base64

from fake_openai_server import FakeOpenAIServer, completion, error, good_reply_json
from test_curves import runaway_run

from llm2.curves_image import curves_png
from llm2.proposers import make_proposer
from llm2.proposers.base import Image, Message, ProposalRequest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CURVES = {"step": [0.0, 10.0, 20.0], "loss": [0.7, 0.5, float("nan")], "margin": [0.0, 0.4, 0.9]}


def request_with_image() -> ProposalRequest:
    return ProposalRequest(messages=(Message("system", "You invent losses."), Message("user", "It diverged.")),
                           history=(), temperature=0.8, seed=1, images=(Image(curves_png(CURVES, "t"), "curves"),))


def sent_messages(images: bool) -> list[dict]:
    with FakeOpenAIServer([completion(good_reply_json())]) as server:
        make_proposer("openai", model="m", base_url=server.base_url, api_key_env="NO_SUCH_KEY",
                      images=images).propose(request_with_image())
    return server.requests[0].body["messages"]


def test_a_proposer_that_accepts_images_sends_the_plot_as_an_image_part():
    system, user = sent_messages(images=True)
    assert system == {"role": "system", "content": "You invent losses."}
    text, picture = user["content"]
    assert text == {"type": "text", "text": "It diverged."}
    assert picture["type"] == "image_url"
    prefix = "data:image/png;base64,"
    assert picture["image_url"]["url"].startswith(prefix)
    assert base64.b64decode(picture["image_url"]["url"][len(prefix):]).startswith(PNG_SIGNATURE)


def test_a_proposer_without_images_gets_the_words_only():
    assert sent_messages(images=False) == [{"role": "system", "content": "You invent losses."},
                                           {"role": "user", "content": "It diverged."}]


def test_a_server_that_refuses_images_gets_the_words_from_then_on():
    refusal = error(400, "Image input is not supported for this model.")
    with FakeOpenAIServer([refusal, completion(good_reply_json()), completion(good_reply_json())]) as server:
        proposer = make_proposer("openai", model="m", base_url=server.base_url, api_key_env="NO_SUCH_KEY",
                                 images=True)
        proposer.propose(request_with_image())
        proposer.propose(request_with_image())
    first, second, third = (r.body["messages"][-1]["content"] for r in server.requests)
    assert isinstance(first, list) and second == third == "It diverged."
    assert not proposer.accepts_images


def test_nothing_to_draw_draws_nothing():
    assert curves_png({"step": [0.0, 1.0], "loss": [float("nan")] * 2}, "t") == b""
    assert curves_png(CURVES, "t").startswith(PNG_SIGNATURE)


def test_a_run_sends_the_latest_candidates_curves_and_records_that_it_did(tmp_path_factory):
    archive, requests = runaway_run(tmp_path_factory)  # the runaway then dpo again, with pictures on
    first, second = (r.body["messages"] for r in requests)
    assert isinstance(first[-1]["content"], str)  # nothing trained yet by the proposer: no picture
    text, picture = second[-1]["content"]
    assert "running away from the reference" in text["text"]  # the words the picture goes with
    png = base64.b64decode(picture["image_url"]["url"].split(",", 1)[1])
    assert png.startswith(PNG_SIGNATURE)
    runaway = next(c for c in archive.candidates() if c.name == "runaway")
    recorded = archive.requests(index=runaway.index + 1)[0].request
    assert recorded["images"][0]["bytes"] == len(png)
    assert f"candidate {runaway.index}" in recorded["images"][0]["caption"]


def test_curve_images_need_a_proposer_that_can_send_them(tmp_path):
    from click.testing import CliRunner

    from llm2.cli import main

    result = CliRunner().invoke(main, ["discover", "--send-curve-images", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "--send-curve-images needs --proposer openai" in result.output
    assert not (tmp_path / "run").exists()
