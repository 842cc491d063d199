"""The pure parts of the memory benchmark (bench/memory.py), and the shared fields sets
of the config's ``[[pools]]``/``[[names]]`` models it led to."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from bench.cfpath import layout, write_config
from bench.memory import _where, per_target, table
from bench.run import loopback_targets
from goavail.config.load import load_config


def _trace(*files: str) -> tracemalloc.Traceback:
    # tracemalloc's raw form: (filename, lineno) frames, most recent first; the
    # Traceback object lists them oldest first
    return tracemalloc.Traceback(tuple((f, 1) for f in files))


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            ("/venv/lib/python3.11/site-packages/pydantic/main.py", "/wt/goavail/config/load.py"),
            "goavail/config/load.py",
        ),
        (("/wt/goavail/health.py", "/wt/goavail/checks/multi.py"), "goavail/health.py"),
        (("/venv/lib/python3.11/site-packages/aiohttp/web.py",), "aiohttp/web.py"),
        (("/usr/lib/python3.11/tomllib/_parser.py",), "3.11/tomllib/_parser.py"),
    ],
)
def test_where_names_the_innermost_goavail_frame(files: tuple[str, ...], expected: str) -> None:
    assert _where(_trace(*files)) == expected


def _result(n: int, **stages: dict[str, int]) -> dict[str, Any]:
    return {"targets": n, "stages": stages}


def test_per_target_is_the_slope_between_the_two_largest_sizes() -> None:
    results = [
        _result(1000, load={"a": 999_999}, up={}, compose={}, **{"pass": {}}),
        _result(2000, load={"a": 3000, "b": 100}, **{"pass": {"a": 4000}}),
        _result(4000, load={"a": 7000, "b": 100}, **{"pass": {"a": 10000, "c": 2000}}),
    ]
    assert per_target(results, "load") == {"a": 2.0, "b": 0.0}
    assert per_target(results, "pass") == {"a": 3.0, "c": 1.0}


def test_table_lists_modules_by_bytes_per_target_with_totals() -> None:
    stages = ("load", "compose", "up")
    small = _result(1000, **{s: {"x": 1000, "y": 1000} for s in stages}, **{"pass": {"x": 1000}})
    large = _result(2000, **{s: {"x": 3000, "y": 2000} for s in stages}, **{"pass": {"x": 6000}})
    lines = table([small, large]).splitlines()
    assert lines[2] == "| `x` | 2 | 2 | 2 | 5 |"
    assert lines[-1] == "| total | **3** | **3** | **3** | **5** |"
    assert all("`y`" not in line for line in lines)  # 0 bytes per target at the last stage


def test_alike_pool_and_name_entries_share_one_fields_set(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, layout(loopback_targets(8)), "20s"))
    assert len({id(p.__pydantic_fields_set__) for p in config.pools}) == 1
    assert len({id(n.__pydantic_fields_set__) for n in config.names}) == 1
    first = config.pools[0]
    assert first.model_fields_set == {"name", "addresses"}
    copy = first.model_copy(update={"ttl": 30})
    assert copy.model_fields_set == {"name", "addresses", "ttl"}
    assert config.pools[1].model_fields_set == {"name", "addresses"}  # not changed by the copy
    assert first.model_dump(exclude_unset=True) == {
        "name": "p0",
        "addresses": list(first.addresses),
    }
