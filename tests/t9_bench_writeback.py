"""Tier 9: the writeback cell's smoke run -- `scripts/bench-writeback --quick` fills a small zramd
device with a sparse backing file, writes half of it back and reads both halves with O_DIRECT;
its table and JSON must hold both rows with positive figures, the written-back reads must have
gone to the backing store (bd_reads grew, one per read) and the resident ones not, and nothing may
be left behind.

Not a speed gate: the latencies are only checked to be there and positive.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks import runners
from tests.mount_util import fuse_unavailable

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed"),
]


def _kernel_state() -> str | None:
    path = runners.KERNEL_SYSFS / "initstate"
    return path.read_text().strip() if path.exists() else None


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("bench-writeback") / "wb.json"
    kernel_before = _kernel_state()
    result = subprocess.run(
        [str(ROOT / "scripts" / "bench-writeback"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"bench-writeback --quick failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    assert kernel_before is None or _kernel_state() == kernel_before, "zram0 was left initialised"
    return json.loads(out.read_text()), result.stdout


def test_quick_has_both_rows_with_positive_figures(quick_run: tuple[dict[str, Any], str]) -> None:
    report, stdout = quick_run
    assert report["config"]["rounds"] == 1
    rows = report["summary"]["rows"]
    for name in ("written-back", "resident"):
        row = rows[name]
        assert row["rounds"] == 1
        assert row["ios"] > 0
        assert row["median_iops"] > 0
        assert 0 < row["median_p50_us"] <= row["median_p99_us"]
        line = next((s for s in stdout.splitlines() if s.startswith(name + " ")), None)
        assert line is not None, f"no {name} row in the table:\n{stdout}"
        figures = [float(word) for word in line.split()[3:6]]
        assert all(x > 0 for x in figures), line
    assert report["summary"]["median_ratio_p50_us"] > 0
    assert "includes a disk read" in stdout
    if report["kernel_skipped"] is None:
        assert rows["kernel"]["median_p50_us"] > 0
    else:
        assert "kernel zram0: skipped:" in stdout


def test_quick_reads_hit_the_backing_store(quick_run: tuple[dict[str, Any], str]) -> None:
    report, stdout = quick_run
    stats, rows = report["stats"], report["summary"]["rows"]
    written_back = report["config"]["written_back_pages"]
    assert stats["bd_stat_after_writeback"][0] == written_back
    assert stats["bd_stat_after_writeback"][2] == written_back
    before, after = stats["bd_stat_before_reads"], stats["bd_stat_after_reads"]
    assert after[1] > before[1], "bd_reads did not grow"
    assert after[0] == before[0], "reading written-back pages changed bd_count"
    assert rows["written-back"]["bd_reads"] == after[1] - before[1]
    assert rows["written-back"]["bd_reads_per_io"] == pytest.approx(1.0, abs=0.01)
    assert rows["resident"]["bd_reads"] == 0
    assert "bd_stat after reads:" in stdout
    assert 0 < stats["backing_allocated_after_writeback"] <= report["config"]["size"]


def test_quick_leaves_nothing_behind(quick_run: tuple[dict[str, Any], str]) -> None:
    report, stdout = quick_run
    assert report["leftovers"] == []
    assert report["problems"] == []
    assert report["error"] is None
    assert "cleanup: nothing left behind" in stdout
    assert not Path(report["info"]["backing"]["path"]).exists()
    assert "zramd-bench-wb-" not in Path("/proc/mounts").read_text()
