"""A task's settings: a frozen dataclass filled from ``--task-option key=value`` or from its recorded JSON.

Values are converted by the field's annotation (float, int, bool, str, an optional of those, or a tuple of str,
float or int written comma-separated); a field's ``metadata["help"]`` is its description in ``llm2 tasks``. The
dataclass's own ``__post_init__`` checks ranges and raises ValueError with the reason.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A task option is unknown or its value is not valid; the message says which and why, in one line."""


@dataclasses.dataclass(frozen=True)
class OptionHelp:
    name: str
    kind: str
    default: Any
    help: str


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _unknown(task: str, cls: type, names: list[str]) -> SettingsError:
    known = ", ".join(_fields(cls)) or "none"
    plural = "s" if len(names) > 1 else ""
    return SettingsError(f"unknown option{plural} {', '.join(map(repr, names))} for task {task}; "
                         f"its options are: {known}")


def parse_option_pairs(pairs: typing.Iterable[str]) -> dict[str, list[str]]:
    """``["rate=0.05", "rate=0.1", "seed=1"]`` -> ``{"rate": ["0.05", "0.1"], "seed": ["1"]}``."""
    options: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise SettingsError(f"a task option must be written key=value, not {pair!r}")
        options.setdefault(key, []).append(value.strip())
    return options


def single_options(pairs: typing.Iterable[str]) -> dict[str, str]:
    """``key=value`` pairs where each key may appear once."""
    options = parse_option_pairs(pairs)
    repeated = [key for key, values in options.items() if len(values) > 1]
    if repeated:
        raise SettingsError(f"option {repeated[0]} given more than once")
    return {key: values[0] for key, values in options.items()}


def parse_settings(task: str, cls: type, options: Mapping[str, str]) -> Any:
    """An instance of ``cls`` from text options."""
    return _build(task, cls, options, _convert)


def settings_from_dict(task: str, cls: type, values: Mapping[str, Any]) -> Any:
    """An instance of ``cls`` from JSON-decoded values (a recorded run), checked as strictly as options."""
    return _build(task, cls, values, _from_json)


def option_help(cls: type) -> list[OptionHelp]:
    hints = _hints(cls)
    rows = []
    for field in _fields(cls).values():
        default = field.default if field.default is not dataclasses.MISSING else (
            field.default_factory() if field.default_factory is not dataclasses.MISSING else None)
        rows.append(OptionHelp(field.name, _type_name(hints[field.name]), default, field.metadata.get("help", "")))
    return rows


def _build(task: str, cls: type, given: Mapping[str, Any], convert: Any) -> Any:
    fields, hints = _fields(cls), _hints(cls)
    unknown = [k for k in given if k not in fields]
    if unknown:
        raise _unknown(task, cls, unknown)
    values = {name: convert(name, hints[name], value) for name, value in given.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc)) from None


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _type_name(annotation: Any) -> str:
    inner, optional = _split_optional(annotation)
    if typing.get_origin(inner) is tuple:
        name = f"list of {typing.get_args(inner)[0].__name__} (comma-separated)"
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} or none" if optional else name


def _convert(name: str, annotation: Any, text: str) -> Any:
    inner, optional = _split_optional(annotation)
    if optional and text.lower() in ("", "none", "null"):
        return None
    if typing.get_origin(inner) is tuple:
        item = typing.get_args(inner)[0]
        return tuple(_scalar(name, item, part.strip()) for part in text.split(",") if part.strip())
    return _scalar(name, inner, text)


def _scalar(name: str, kind: Any, text: str) -> Any:
    try:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
    except ValueError:
        article = "an" if kind is int else "a"
        word = {bool: "boolean (true or false)", int: "integer", float: "number"}[kind]
        raise SettingsError(f"option {name}: {text!r} is not {article} {word}") from None
    raise SettingsError(f"option {name}: unsupported type {kind!r}")  # a task bug, not a user error


def _from_json(name: str, annotation: Any, value: Any) -> Any:
    inner, optional = _split_optional(annotation)
    if value is None:
        if optional:
            return None
        raise SettingsError(f"option {name}: null is not allowed")
    if typing.get_origin(inner) is tuple:
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"option {name}: expected a list, got {value!r}")
        item = typing.get_args(inner)[0]
        return tuple(_json_scalar(name, item, v) for v in value)
    return _json_scalar(name, inner, value)


def _json_scalar(name: str, kind: Any, value: Any) -> Any:
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise SettingsError(f"option {name}: expected {kind.__name__}, got {value!r}")
