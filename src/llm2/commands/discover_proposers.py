"""The proposers of ``llm2 discover``: from ``--proposer`` (repeated) and ``--proposer-config FILE``, each with its own
server, model and key where given, to what the run records (``DiscoveryConfig.proposer``, ``proposer_options``,
``more_proposers``, ``more_proposer_options``) and back to the proposers (``several_proposers``).

Forms of ``--proposer``: ``NAME``; ``NAME:VALUE`` (the model of openai, hf and factory, the file of replay), sharing
the first proposer's other options; ``openai:MODEL@URL``, a model at its own server (the other options shared).
A ``--proposer-config`` file (TOML or JSON) lists proposers with every option of their own; the command line's
options are each entry's defaults. Every bad value is one line and exit code 2, before anything is made.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from llm2.commands.exits import BadInput

MODEL_PROPOSERS = ("openai", "hf", "replay", "factory")
SERVED = ("openai",)  # the proposers that talk to a server, so may name one (@URL)

# a --proposer-config entry's keys: the command line's option each stands for, and the values it takes
ENTRY_KEYS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "model": ("model", str), "base_url": ("base_url", str), "api_key_env": ("api_key_env", str),
    "replay": ("replay", str), "price_prompt": ("price_prompt", (int, float)),
    "price_completion": ("price_completion", (int, float)), "request_timeout": ("request_timeout", (int, float)),
    "max_tokens": ("max_tokens", int), "images": ("images", bool), "image_tokens": ("image_tokens", int),
    "context_tokens": ("context_tokens", int),
}
OWN_ONLY = ("context_tokens",)  # entry keys with no command-line default: --context-tokens is the whole run's
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # a registered proposer's name: labels add :VALUE and @URL to it
AT_LEAST = {"price_prompt": 0, "price_completion": 0, "max_tokens": 1, "image_tokens": 0, "context_tokens": 64}


@dataclass(frozen=True)
class Proposers:
    """What the run records of its proposers."""

    first: str  # the first proposer's name
    first_options: dict[str, Any]
    more: tuple[str, ...] = ()  # the others' labels
    more_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> its own options
    # (a label absent: it shares the first one's)


def proposer_options(proposer: str, *, model: str | None, base_url: str | None, api_key_env: str | None,
                     replay: str | None, seed: int, max_cost: float | None, price_prompt: float | None,
                     price_completion: float | None, request_timeout: float | None, max_tokens: int | None,
                     resuming: bool = False, images: bool = False, image_tokens: int | None = None) -> dict:
    """The proposer's options from the command line; on resume only those given (they replace the recorded ones)."""
    if images and proposer != "openai":
        raise click.UsageError("--send-curve-images needs --proposer openai (with a model that reads images)")
    if image_tokens is not None and not images and not resuming:
        raise click.UsageError("--image-tokens counts the pictures --send-curve-images sends; give both")
    if proposer not in MODEL_PROPOSERS:
        return {} if resuming else {"seed": seed}
    if proposer == "replay":
        if not replay and not resuming:
            raise click.UsageError("--proposer replay needs --replay FILE.jsonl")
        return {"path": replay} if replay else {}
    if not model and not resuming:
        raise click.UsageError(f"--proposer {proposer} needs --model")
    if proposer in ("hf", "factory"):
        return {"model": model} if model else {}
    if max_cost is not None and price_prompt is None and price_completion is None:
        raise click.UsageError("--max-cost needs --price-prompt and/or --price-completion: without prices no "
                               "cost is counted, so the cap would cap nothing")
    options = {"model": model, "base_url": base_url, "api_key_env": api_key_env, "max_cost_usd": max_cost,
               "price_prompt_per_1k": price_prompt, "price_completion_per_1k": price_completion,
               "request_timeout_s": request_timeout, "max_tokens": max_tokens, "images": images or None,
               "image_tokens": image_tokens}
    return {k: v for k, v in options.items() if v is not None}


def choose_proposers(given: tuple[str, ...], config_file: Path | None, cli: dict[str, Any],
                     default: str | None) -> Proposers | None:
    """The run's proposers from ``--proposer`` values (``given``), the ``--proposer-config`` file and the command
    line's other proposer options (``cli``, as ``proposer_options`` takes them); None when neither names one and the
    task has no ``default``. BadInput (one line, exit 2) for anything wrong."""
    entries = [_inline(spec, cli, first=not index) for index, spec in enumerate(given)]
    if config_file is not None:
        entries += [_entry(config_file, number, raw, cli) for number, raw in enumerate(_read(config_file), 1)]
    if not entries:
        return None if default is None else Proposers(default, _options(default, cli))
    (first_name, first_options, _), *others = entries
    labels = _labels([(first_name, first_options, None)] + [(name, options, own) for name, options, own in others])
    more_options = {label: own for label, (_, _, own) in zip(labels[1:], others) if own is not None}
    return Proposers(first_name, first_options, tuple(labels[1:]), more_options)


def _inline(spec: str, cli: dict[str, Any], first: bool) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """(name, options, its own options or None when it shares the first one's) of one ``--proposer`` value."""
    name, colon, rest = spec.partition(":")
    value, at, url = rest.partition("@")
    if not name or (colon and not value) or (at and not url):
        raise BadInput(f"--proposer {spec!r}: expected NAME, NAME:VALUE or openai:MODEL@URL")
    if at and name not in SERVED:
        raise BadInput(f"--proposer {spec!r}: only {', '.join(SERVED)} proposers have a server to name (@URL)")
    if at:
        _check_url(url, f"--proposer {spec!r}")
    if not first and not at:  # shares the first one's options, as before: only its label is known here
        return name, ({"path" if name == "replay" else "model": value} if value else {}), None
    own = dict(cli)
    if value:
        key = "replay" if name == "replay" else "model"
        if first and cli.get(key) not in (None, value):
            raise BadInput(f"--proposer {spec!r} names its {'file' if key == 'replay' else 'model'}; drop --{key}")
        own[key] = value
    if at:
        if first and cli.get("base_url") not in (None, url):
            raise BadInput(f"--proposer {spec!r} names its server; drop --base-url")
        own["base_url"] = url
    options = _options(name, own)
    return name, options, None if first else _without_cap(options)


def _read(path: Path) -> list[Any]:
    """The entries of a --proposer-config file: TOML (``[[proposer]]`` tables) or JSON (a list, or an object whose
    ``proposer`` is one)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--proposer-config {path}: cannot be read: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise BadInput(f"--proposer-config {path}: not valid {kind}: {str(exc).splitlines()[0]}") from None
    entries = data.get("proposer") if isinstance(data, dict) else data
    if isinstance(data, dict) and set(data) - {"proposer"}:
        raise BadInput(f"--proposer-config {path}: unknown key(s) {', '.join(sorted(set(data) - {'proposer'}))}; "
                       "list the proposers as [[proposer]] tables")
    if not isinstance(entries, list) or not entries:
        raise BadInput(f"--proposer-config {path}: no proposers; list them as [[proposer]] tables, each with a name")
    return entries


def _entry(path: Path, number: int, raw: Any, cli: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    where = f"--proposer-config {path}: proposer {number}"
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: expected a table of options, not {type(raw).__name__}")
    unknown = sorted(set(raw) - set(ENTRY_KEYS) - {"name"})
    if unknown:
        raise BadInput(f"{where}: unknown key(s) {', '.join(unknown)}; known: name, {', '.join(ENTRY_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise BadInput(f"{where}: needs a name such as openai, hf, replay or an offline proposer's, not {name!r}")
    own = dict(cli)
    if name not in SERVED:  # the command line's pictures are for its openai proposers, not for this one
        own.update(images=False, image_tokens=None)
    for key, value in raw.items():
        if key != "name" and key not in OWN_ONLY:
            own[ENTRY_KEYS[key][0]] = _checked(where, key, value)
    for key in ("base_url", *OWN_ONLY):
        if key in raw and name not in SERVED:
            what = "have a server (base_url)" if key == "base_url" else f"take {key}"
            raise BadInput(f"{where}: only {', '.join(SERVED)} proposers {what}")
    if "base_url" in raw:
        _check_url(raw["base_url"], where)
    needed = "replay" if name == "replay" else "model" if name in MODEL_PROPOSERS else None
    if needed and not own.get(needed):
        raise BadInput(f"{where}: {name} needs {needed}")
    options = _options(name, own, where)
    options.update({key: _checked(where, key, raw[key]) for key in OWN_ONLY if key in raw})
    return name, options, _without_cap(options)


def _checked(where: str, key: str, value: Any) -> Any:
    kinds = ENTRY_KEYS[key][1]
    if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool):
        raise BadInput(f"{where}: {key} must be {_kind_text(kinds)}, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"{where}: {key} must be a finite number, not {value!r}")
    if key == "request_timeout" and not value > 0:
        raise BadInput(f"{where}: {key} must be positive, not {value!r}")
    if key in AT_LEAST and value < AT_LEAST[key]:
        raise BadInput(f"{where}: {key} must be at least {AT_LEAST[key]}, not {value!r}")
    return value


def _options(name: str, cli: dict[str, Any], where: str | None = None) -> dict[str, Any]:
    try:
        return proposer_options(name, **cli)
    except click.UsageError as exc:
        raise BadInput(f"{where}: {exc.message}" if where else exc.message) from None


def _without_cap(options: dict[str, Any]) -> dict[str, Any]:
    """One --max-cost caps the whole run: it is the first proposer's (changed there on resume), not each one's."""
    return {k: v for k, v in options.items() if k != "max_cost_usd"}


def _labels(proposers: list[tuple[str, dict[str, Any], dict[str, Any] | None]]) -> list[str]:
    """How each proposer is named on its candidates: NAME:MODEL (NAME:FILE for replay, NAME alone for an offline
    one), with @URL added to one of its own server where another proposer of the run has the same NAME:MODEL."""
    plain = [name + (f":{value}" if (value := options.get("model") or options.get("path")) and
                     name in MODEL_PROPOSERS else "") for name, options, _ in proposers]
    labels = []
    for index, ((_, options, own), label) in enumerate(zip(proposers, plain)):
        if index and own is not None and plain.count(label) > 1 and options.get("base_url"):
            label = f"{label}@{options['base_url']}"
        if label in labels:
            raise BadInput(f"proposer {label} is given twice; give each its own model or server")
        labels.append(label)
    return labels


def _check_url(url: Any, where: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"{where}: {url!r} is not an http(s) URL such as http://localhost:8000/v1")


def _kind_text(kinds: type | tuple[type, ...]) -> str:
    return {str: "text", bool: "true or false", int: "a whole number"}.get(kinds, "a number")


def several_proposers(config, first, task=None):
    """The bandit over the run's proposers. Each of ``more_proposers`` with its own options
    (``more_proposer_options``) is built from them, the run's --max-cost added; the others share the first one's
    options, with their VALUE as the replay file (replay) or the model (others). Labels name each as recorded on its
    candidates."""
    from llm2.discovery.bandit import ProposerBandit
    from llm2.proposers import make_proposer

    arms = {config.proposer_labels()[0]: first}
    own_options = config.more_proposer_options
    cap = config.proposer_options.get("max_cost_usd")
    for spec in config.more_proposers:
        name, _, value = spec.partition(":")
        if spec in own_options:
            options = dict(own_options[spec])
            if cap is not None and name in SERVED:
                options["max_cost_usd"] = cap
        else:
            options = {k: v for k, v in config.proposer_options.items() if k not in ("model", "path")}
            if value:
                options["path" if name == "replay" else "model"] = value
            if name not in MODEL_PROPOSERS:
                options = {"seed": config.seed} if name != "replay" else options
        if spec in arms:
            raise ValueError(f"proposer {spec} is given twice")
        arms[spec] = make_proposer(name, task=task, **options)
    return ProposerBandit(arms)
