"""Readers of the deployment files (``Dockerfile``, ``contrib/goavail.service``) for tests.

There is no Docker engine and no systemd running on the test machines, so the
tests take these files apart and run what can run: the Dockerfile's
``HEALTHCHECK`` command, the unit's ``ExecStart``/``ExecReload`` command lines.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
UNIT = REPO / "contrib" / "goavail.service"


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction: ``keyword`` upper-cased, ``args`` as written (one line)."""

    keyword: str
    args: str


def dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """The instructions of a Dockerfile, comments dropped and continuation lines joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, args = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    return instructions


def only(keyword: str, path: Path = DOCKERFILE) -> Instruction:
    """The one instruction ``keyword`` of the Dockerfile.

    Raises:
        AssertionError: there is none, or more than one.
    """
    found = [i for i in dockerfile(path) if i.keyword == keyword]
    assert len(found) == 1, f"{len(found)} {keyword} instructions in {path}"
    return found[0]


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form ``CMD`` / ``ENTRYPOINT`` / ``HEALTHCHECK CMD``."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def healthcheck_argv(path: Path = DOCKERFILE) -> list[str]:
    """The Dockerfile's ``HEALTHCHECK`` command, ``python`` replaced by this interpreter."""
    args = only("HEALTHCHECK", path).args
    _, _, command = args.partition(" CMD ")
    argv = exec_form(command)
    assert argv[0] == "python", argv
    return [sys.executable, *argv[1:]]


def unit_entries(path: Path = UNIT) -> dict[str, list[str]]:
    """``"Section.Key"`` -> every value of the key in a systemd unit file, in order."""
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        entries.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return entries


def unit_command(value: str, env: Mapping[str, str]) -> list[str]:
    """A unit's ``Exec*=`` command line as systemd splits it.

    ``$NAME`` as a word of its own becomes the variable's value split on blanks
    (nothing when unset or empty), ``${NAME}`` the value as one word (systemd.service(5),
    "Command lines"); a leading ``-``/``@``/``+``/``!`` prefix is not supported here.
    """
    argv: list[str] = []
    for word in shlex.split(value):
        if word.startswith("${") and word.endswith("}"):
            argv.append(env.get(word[2:-1], ""))
        elif word.startswith("$") and word[1:].replace("_", "").isalnum():
            argv.extend(env.get(word[1:], "").split())
        else:
            argv.append(word)
    return argv
