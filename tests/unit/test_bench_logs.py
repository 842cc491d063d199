"""The benchmark harnesses read goavail's summarised first-state lines (goavail/firstlines.py)
as well as the per-target ones: counts, the "every target decided" line, the pools shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.agents import AgentLog, pool_names
from bench.cluster_scale import warmup_breakdown
from bench.run import LogWatcher

STAMP = "2026-12-08T01:52:01+0000"


def line(level: str, logger: str, message: str) -> str:
    return f"{STAMP} {level:<7} {logger}: {message}"


LINES = [
    line("INFO", "goavail.agent", "decision for 198.18.0.1: up (votes: a(self)=up b=up)"),
    line("DEBUG", "goavail.agent", "decision for 198.18.0.2: up (votes: a(self)=up b=up)"),
    line(
        "INFO",
        "goavail.agent",
        "first decisions on 9998 more targets: 9998 up (one line each at DEBUG)",
    ),
    line("INFO", "goavail.agent", "decision for 198.18.0.3: down (votes: a(self)=down b=down)"),
    line("INFO", "goavail.cluster", "peer b joined (1 live peers)"),
    line("INFO", "goavail.agent", "every target decided: 9999 up, 1 down, 4.2 s after start"),
]


def test_agent_log_counts_first_decisions_from_lines_and_summaries() -> None:
    log = AgentLog("a", {}, keep_events=False)
    for i, text in enumerate(LINES):
        log.feed(float(i), (text + "\n").encode())
    # one INFO line + the summary; the DEBUG line (as with --debug) is in the summary
    assert log.decided_up == 1 + 9998
    assert set(log.first_decision) == {"198.18.0.1", "198.18.0.2"}
    assert log.other_decisions == 1
    assert log.joined == {"b": 4.0}
    assert log.cluster_ready_at == 4.0
    assert log.decided_at == 5.0


def test_warmup_breakdown_adds_the_summaries(tmp_path: Path) -> None:
    path = tmp_path / "goavail-a.log"
    texts = [
        line("INFO", "goavail.agent", "target 198.18.0.1 unknown -> up after 3 consecutive s"),
        line(
            "INFO",
            "goavail.agent",
            "first verdicts on 9999 more targets: 9999 up; 9999 of them wait for peers' votes "
            "(one line each at DEBUG)",
        ),
        line("INFO", "goavail.cluster", "peer b votes 198.18.0.1 up"),
        line(
            "INFO",
            "goavail.cluster",
            "peer b: first votes on 9999 more targets: 9999 up (one line each at DEBUG)",
        ),
        line("DEBUG", "goavail.cluster", "peer b votes 198.18.0.2 up"),
        line("INFO", "goavail.agent", "every target decided: 10000 up, 4.2 s after start"),
    ]
    path.write_text("".join(f"{10 + i}.000 {t}\n" for i, t in enumerate(texts)))
    got = warmup_breakdown(path, 10.0, 0.0)
    assert got["own_up_verdicts"] == 10000
    assert (got["own_first_up_s"], got["own_last_up_s"]) == (0.0, 1.0)
    assert got["peer_votes_up"] == {"b": 10000}
    assert got["peer_last_vote_up_s"] == {"b": 3.0}
    assert got["last_decision_up_s"] == 5.0


def test_log_watcher_counts_summarised_first_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "goavail.log"
    path.write_text(
        line("INFO", "goavail.agent", "target 127.0.0.1 unknown -> up after 3 consecutive s")
        + "\n"
        + line(
            "INFO",
            "goavail.agent",
            "first verdicts on 50 more targets: 45 up, 5 down (127.0.0.2, 127.0.0.3 and 3 "
            "more) (one line each at DEBUG)",
        )
        + "\n"
    )
    watcher = LogWatcher(path)
    watcher.poll()
    assert (watcher.up_from_unknown, watcher.downs) == (46, 5)


@pytest.mark.parametrize(
    ("n", "size", "pools"),
    [
        (5, 2, {"p0": ["t0", "t1"], "p1": ["t2", "t3"], "p2": ["t4"]}),
        (2, 5, {"p0": ["t0", "t1"]}),
        (0, 2, {}),
    ],
)
def test_pool_names(n: int, size: int, pools: dict[str, list[str]]) -> None:
    assert pool_names([f"t{i}" for i in range(n)], size) == pools


def test_pool_names_needs_a_size() -> None:
    with pytest.raises(ValueError, match="pool_size"):
        pool_names(["t0"], 0)
