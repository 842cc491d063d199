"""The pure parts of the Cloudflare-path benchmark (bench/cfpath.py) and the config it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cfpath import CfResult, _percentile, layout, slope_kb, write_config, zone_name
from bench.run import loopback_targets
from goavail.config.load import load_config


def test_layout_deals_two_targets_per_name_over_five_zones() -> None:
    targets = loopback_targets(20)
    names = layout(targets)
    assert len(names) == 10
    assert [n for _, n, _ in names[:6]] == [
        "n0.z0.cfbench.test",
        "n1.z1.cfbench.test",
        "n2.z2.cfbench.test",
        "n3.z3.cfbench.test",
        "n4.z4.cfbench.test",
        "n5.z0.cfbench.test",
    ]
    assert all(name.endswith("." + zone) for zone, name, _ in names)
    assert [a for _, _, addrs in names for a in addrs] == targets


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.5, 7.0),
        ([150.1, 95.2], 0.5, 95.2),  # nearest rank: ceil(0.5 * 2) = 1st
        ([3.0, 1.0, 2.0], 0.5, 2.0),
        ([3.0, 1.0, 2.0, 4.0], 1.0, 4.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert _percentile(values, q) == expected


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([(10_000, 100.0)], None),
        ([(10_000, 100.0), (50_000, 139.0625)], 1.0),  # 39.0625 MB over 40,000 targets
        ([(50_000, 120.0), (10_000, 80.0), (1_000, 70.0)], 1.024),  # the two largest
    ],
)
def test_rss_slope_between_the_two_largest_sizes(
    rows: list[tuple[int, float]], expected: float | None
) -> None:
    results = [CfResult(targets=n, goavail_rss_mb=mb) for n, mb in rows]
    assert slope_kb(results) == expected


def test_the_config_written_is_a_valid_goavail_config(tmp_path: Path) -> None:
    names = layout(loopback_targets(40))
    config = load_config(write_config(tmp_path, names, "20s"))
    assert config.resync_interval == 20.0
    assert config.cloudflare is not None
    assert [p.name for p in config.pools][:2] == ["p0", "p1"]
    assert {n.name for n in config.names} == {name for _, name, _ in names}
    assert zone_name(0) == "z0.cfbench.test"
