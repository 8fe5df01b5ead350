"""Tier 9: the benchmark's CI smoke run -- `scripts/bench --quick` runs the reduced matrix against
zramd, the no-op ceiling and (when free) the kernel's zram0, and writes a sane JSON and a PNG.

Not a speed gate: the targets are only checked to be reported (PASS, MISS or n/a), never to pass.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks import fio_matrix, runners
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
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("matplotlib", reason="matplotlib draws the benchmark's chart")
    out = tmp_path_factory.mktemp("bench")
    kernel_before = _kernel_state()
    result = subprocess.run(
        [
            str(ROOT / "scripts" / "bench"),
            "--quick",
            "--json",
            str(out / "q.json"),
            "--png",
            str(out / "q.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"bench --quick failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert kernel_before is None or _kernel_state() == kernel_before, "zram0 was left initialised"
    return json.loads((out / "q.json").read_text()), out / "q.png", result.stdout


def test_quick_json_has_every_cell_and_ratio(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    report, _, _ = quick_run
    assert report["options"]["quick"] is True
    expected = [cell.name for cell in fio_matrix.build_matrix(quick=True)]
    assert [row["name"] for row in report["cells"]] == expected
    ran = [name for name, target in report["targets"].items() if "skipped" not in target]
    assert {"zramd", "python", "noop"} <= set(ran)
    assert report["machine"]["zramd_core"].startswith("compiled")
    assert report["machine"]["python_core"].startswith("python")
    for row in report["cells"]:
        for name in ran:
            runs = row["runs"][name]
            assert len(runs) == report["options"]["repeat"]
            for run in runs:
                assert run["nbytes"] > 0
                assert run["mbps"] > 0
                assert run["iops"] > 0
                if row["engine"] != "dd":
                    assert 0 < run["p50_us"] <= run["p99_us"]
            assert row["median"][name]["mbps"] > 0
        assert set(row["ratios"]) == {"zramd/noop", "zramd/kernel", "zramd/python"}
        assert row["ratios"]["zramd/noop"] > 0
        assert row["ratios"]["zramd/python"] > 0
        if "kernel" in ran:
            assert row["ratios"]["zramd/kernel"] > 0
        else:
            assert row["ratios"]["zramd/kernel"] is None


def test_quick_memory_and_goals(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    report, _, stdout = quick_run
    memory = report["memory"]
    assert memory["idle_rss"] > 0
    assert len(memory["passes"]) == runners.OVERWRITE_PASSES
    for p in memory["passes"]:
        assert p["rss"] > memory["idle_rss"]
        assert 0 < p["mem_used_total"] <= p["rss"]
        assert p["orig_data_size"] > 0
        assert math.isfinite(p["metadata_bytes_per_page"])
    goals = report["goals"]
    assert goals
    assert {goal["status"] for goal in goals} <= {"PASS", "MISS", "n/a"}
    assert any("zramd/noop" in goal["goal"] for goal in goals)
    assert report["machine"]["leftovers"] == []
    assert "cleanup: nothing left behind" in stdout
    assert "vs noop" in stdout


def test_quick_chart(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    _, png, _ = quick_run
    data = png.read_bytes()
    assert len(data) > 1000
    assert data.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.usefixtures("quick_run")
def test_quick_leaves_nothing_behind() -> None:
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=False).stdout
    assert "zramd-bench-" not in loops
    assert "zramd-bench-" not in Path("/proc/mounts").read_text()
    assert not list(Path("/dev/shm").glob("zramd-bench-*"))
