"""Tier 3: `zramd estimate`, against the kernel's figures and the kernel's zram itself."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kernel_zram import kernel_zram
from zramd.admin.estimate import estimate_image, estimate_sizes
from zramd.core import compress

VECTORS = Path(__file__).resolve().parent / "data" / "complen_corpus64_lzo.txt"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zramd", *args], capture_output=True, text=True, check=False)


def test_sizes_replay_gives_the_kernels_mm_stat() -> None:
    result = run_cli("estimate", "--sizes", str(VECTORS))
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert (
        first == "mm_stat: 67108864 36757955 38801408        0 38801408      143        0     2240     2240"
    )
    assert "1.73:1" in result.stdout


def test_sizes_replay_json() -> None:
    result = run_cli("estimate", "--sizes", str(VECTORS), "--json")
    stat = json.loads(result.stdout)["mm_stat"]
    assert stat["mem_used_total"] == 9473 * 4096
    assert stat["compr_data_size"] == 36757955


def test_bad_sizes_line_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("S\n1200\nbanana\n")
    result = run_cli("estimate", "--sizes", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip() == "zramd: line 3: expected S, H or a compressed length, got 'banana'"
    assert "Traceback" not in result.stderr


def test_missing_image_is_one_clear_error() -> None:
    result = run_cli("estimate", "/nonexistent/image")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "No such file" in result.stderr


def test_estimate_matches_the_kernels_rules_on_a_mixed_image(tmp_path: Path) -> None:
    # 4 zero pages, 3 word-filled pages, 2 random pages, 1 text page, 1 partial page at the end.
    text = (Path(estimate_image.__code__.co_filename).read_bytes() * 2)[:4096]
    noise = random.Random(11).randbytes(2 * 4096)
    image = tmp_path / "mixed.img"
    image.write_bytes(bytes(4 * 4096) + b"ABCDEFGH" * 1536 + noise + text + b"tail" * 100)
    stat = estimate_image(str(image), "lzo").mm_stat
    assert stat.orig_data_size == 11 * 4096
    assert stat.same_pages == 7
    assert stat.huge_pages == 2
    assert stat.compr_data_size > 2 * 4096


def test_replay_through_api_counts_huge_lengths_as_huge() -> None:
    stat = estimate_sizes(["S", "3625", "3624", "H", "100"]).mm_stat
    assert stat.huge_pages == 2
    assert stat.compr_data_size == 4096 * 2 + 3624 + 100
    assert stat.same_pages == 1


@pytest.mark.parametrize("algorithm", compress.algorithm_names())
def test_estimate_agrees_with_the_kernels_zram(corpus64: Path, algorithm: str) -> None:
    offered = Path("/sys/block/zram0/comp_algorithm")
    if offered.exists() and algorithm not in offered.read_text().replace("[", " ").replace("]", " ").split():
        pytest.skip(f"the kernel's zram here is built without the {algorithm} backend")
    ours = estimate_image(str(corpus64), algorithm).mm_stat
    with kernel_zram(algorithm, "128M") as zram:
        zram.write_image(corpus64)
        kernel = zram.mm_stat()
    orig, compr, used, _limit, _max, same, _compacted, huge, _since = kernel
    assert ours.orig_data_size == orig
    assert ours.same_pages == same
    assert abs(ours.mem_used_total - used) / used < 0.005, (ours.mem_used_total, used)
    assert abs(ours.compr_data_size - compr) / compr < 0.005, (ours.compr_data_size, compr)
    assert abs(ours.huge_pages - huge) <= max(2, huge * 0.02), (ours.huge_pages, huge)


def _mixed_image(tmp_path: Path) -> Path:
    text = (Path(estimate_image.__code__.co_filename).read_bytes() * 40)[: 64 * 4096]
    noise = random.Random(12).randbytes(8 * 4096)
    image = tmp_path / "mixed.img"
    image.write_bytes(bytes(4 * 4096) + noise + text)
    return image


def test_every_algorithm_side_by_side_from_one_pass(tmp_path: Path) -> None:
    """--algorithm all: one row per algorithm of comp_algorithm, each exactly the mm_stat a
    device of that algorithm alone would show, with positive write and read speeds."""
    image = _mixed_image(tmp_path)
    result = run_cli("estimate", str(image), "--algorithm", "all", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["algorithm"] for row in rows] == compress.algorithm_names()
    for row in rows:
        alone = estimate_image(str(image), row["algorithm"]).mm_stat
        assert row["mm_stat"] == {k: getattr(alone, k) for k in alone.__dataclass_fields__}, row["algorithm"]
        assert row["write_mb_per_s"] > 0 and row["read_mb_per_s"] > 0
        assert row["ratio"] == pytest.approx(alone.orig_data_size / alone.compr_data_size)
    by_name = {row["algorithm"]: row["mm_stat"]["compr_data_size"] for row in rows}
    assert by_name["lz4hc"] <= by_name["lz4"]  # high compression is never worse here
    table = run_cli("estimate", str(image), "--algorithm", "lzo,lz4")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["ALGORITHM", "DATA", "COMPR", "TOTAL"]
    assert [line.split()[0] for line in lines[1:]] == ["lzo", "lz4"]


def test_estimate_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (a dev dependency)")
    png = tmp_path / "chart.png"
    result = run_cli("estimate", str(_mixed_image(tmp_path)), "--algorithm", "lzo,zstd", "--plot", str(png))
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"chart: {png}" in result.stdout


def test_unknown_algorithm_in_a_list_is_one_clear_error(tmp_path: Path) -> None:
    result = run_cli("estimate", str(_mixed_image(tmp_path)), "--algorithm", "lzo,842")
    assert result.returncode == 2
    assert "unknown algorithm '842'" in result.stderr and "Traceback" not in result.stderr
