"""Reading the file: TOML -> :class:`~goavail.config.model.Config`, every problem as a
line with its key path (:class:`~goavail.config.errors.ConfigError`)."""

from __future__ import annotations

import difflib
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

if sys.version_info >= (3, 11):  # noqa: UP036 - tomli fallback kept on purpose
    import tomllib
else:  # pragma: no cover - Python < 3.11 only
    import tomli as tomllib

from goavail.config.errors import _TYPE_NAMES, ConfigError, _Problems
from goavail.config.model import Config


def load_config(path: Path | str) -> Config:
    """Read and validate a TOML configuration file.

    Relative paths in the file (``audit_file``, ``[Zonefile] path``) are
    resolved against the file's directory.

    Raises:
        ConfigError: the file cannot be read (one problem naming the path and
            the OS error), is not valid UTF-8 TOML (one problem with line and
            column), or fails validation (every problem at once).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror or exc}"], path) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not valid UTF-8 (at byte {exc.start})"], path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"TOML syntax error: {exc}"], path) from None
    try:
        config = Config.model_validate(data, context={"base_dir": path.absolute().parent})
    except ValidationError as exc:
        # `from None`: the ValidationError's text would carry input values.
        raise ConfigError(_format_errors(exc), path) from None
    config._source = path
    _share_fields_sets([*config.pools, *config.names])
    return config


def _share_fields_sets(models: Sequence[BaseModel]) -> None:
    """Give models with the same set fields one shared ``__pydantic_fields_set__``.

    pydantic keeps a set of the names given per model instance (216 bytes and more
    each); ``[[pools]]`` and ``[[names]]`` entries are thousands in a fleet's file and
    mostly alike. Safe because the models are frozen (no assignment adds to the set)
    and pydantic copies the set for ``model_copy``.
    """
    shared: dict[frozenset[str], set[str]] = {}
    for model in models:
        fields = model.__pydantic_fields_set__
        one = shared.setdefault(frozenset(fields), fields)
        if one is not fields:
            object.__setattr__(model, "__pydantic_fields_set__", one)


_TYPE_MESSAGES: dict[str, str] = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be an array",
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "path_type": "must be a string (a file path)",
    "int_from_float": "must be an integer",
}


def _format_errors(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        ctx = error.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, _Problems):
            problems.extend(f"{_key_path(loc + sub)}: {msg}" for sub, msg in cause.items)
            continue
        problems.append(f"{_key_path(loc)}: {_message(error['type'], error, loc)}")
    return problems


def _message(kind: str, error: Any, loc: tuple[str | int, ...]) -> str:
    ctx = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        hint = _suggest(loc)
        return f"unknown key (did you mean {hint!r}?)" if hint else "unknown key"
    if kind in _TYPE_MESSAGES:
        got = _TYPE_NAMES.get(type(error.get("input")))
        message = _TYPE_MESSAGES[kind]
        if got is not None:
            message += f", not {got}"
        return message
    if kind == "greater_than_equal":
        return f"must be ≥ {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be ≤ {ctx['le']}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} item{'' if n == 1 else 's'}"
    if kind == "string_too_short":
        return "must not be empty"
    message = str(error["msg"])
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _key_path(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def _model_fields(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """TOML key -> nested model class (None for scalar fields) of ``model``."""
    result: dict[str, type[BaseModel] | None] = {}
    for name, info in model.model_fields.items():
        nested: type[BaseModel] | None = None
        annotation = info.annotation
        candidates = (
            typing.get_args(annotation)
            if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None
            else (annotation,)
        )
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested = candidate
        result[info.alias or name] = nested
    return result


def _suggest(loc: tuple[str | int, ...]) -> str | None:
    """A known key close to the unknown key at ``loc``, if any."""
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # an index into a list of tables ([[notifications]])
        if model is None:
            return None
        model = _model_fields(model).get(part)
    if model is None or not loc or not isinstance(loc[-1], str):
        return None
    known = {key.lower(): key for key in _model_fields(model)}
    match = difflib.get_close_matches(loc[-1].lower(), list(known), n=1, cutoff=0.75)
    return known[match[0]] if match else None
