"""The benchmark's report: medians, ratios, zramd's targets, the JSON document and the text tables.

Owns: turning a finished (or checkpointed) `runners.Bench` into the report dictionary that is
written as JSON -- per-cell medians over repetitions, the ratios (the median over repetitions of
the per-repetition ratio zramd MB/s / other MB/s), zramd's speed and memory targets with the
measured values -- and the tables printed on stdout.

Must not: run anything, touch a device, or turn a target into an exit status: targets are
reported as PASS/MISS (or n/a when a target did not run), never enforced.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from benchmarks.runners import OVERWRITE_PASSES, TARGETS, Bench, KiB, MiB
from zramd.core.units import format_size

# zramd's targets: reported next to the measured values, never an exit status.
NOOP_GOAL = 0.9  # 4k O_DIRECT random write and read on the file, fio50 data: zramd >= 0.9x no-op
KERNEL_GOAL = 0.8  # 128k and 1M sequential writes and reads: zramd >= 0.8x kernel
MEM_USED_TOLERANCE = 0.005  # mem_used_total within 0.5% of the kernel's on the same data
METADATA_GOAL = 24  # bytes of daemon memory per written page besides the pool, after one overwrite
RSS_BYTES_PER_PAGE = 16  # daemon RSS <= mem_used_total + 16 B per page of disksize + 64 MiB
RSS_SLACK = 64 * MiB
GROWTH_TOLERANCE = 0.01  # "no growth": later passes within 1% of the first

_MEDIAN_KEYS = ("iops", "mbps", "p50_us", "p99_us", "cpu_s_per_gib", "sys_s_per_gib")


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values that are not None (None when there are none)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(bench: Bench) -> list[dict[str, Any]]:
    """One entry per cell: its runs, per-target medians, and the ratio medians."""
    rows = []
    for cell in bench.cells:
        runs = bench.results.get(cell.name, {})
        medians = {
            name: {key: median([getattr(m, key) for m in measured]) for key in _MEDIAN_KEYS}
            for name, measured in runs.items()
            if measured
        }
        ratios: dict[str, float | None] = {}
        for mine_name, other in (("zramd", "noop"), ("zramd", "kernel"), ("zramd", "python")):
            mine, theirs = runs.get(mine_name, []), runs.get(other, [])
            pairs = [a.mbps / b.mbps for a, b in zip(mine, theirs, strict=False) if b.mbps > 0]
            ratios[f"{mine_name}/{other}"] = statistics.median(pairs) if pairs else None
        rows.append(
            {
                "name": cell.name,
                **asdict(cell),
                "iodepth": cell.iodepth,
                "runs": {name: [asdict(m) for m in measured] for name, measured in runs.items()},
                "median": medians,
                "ratios": ratios,
            }
        )
    return rows


def goals(rows: list[dict[str, Any]], memory: dict[str, Any]) -> list[dict[str, Any]]:
    """zramd's targets (speed against the no-op ceiling and the kernel, memory against the
    kernel's and its own first pass) with the measured values: PASS, MISS, or n/a when a target
    did not run."""
    found: list[dict[str, Any]] = []
    ok: bool | None

    def add(name: str, value: float | None, limit: str, ok: bool | None) -> None:
        status = "n/a" if ok is None else "PASS" if ok else "MISS"
        found.append({"goal": name, "value": value, "limit": limit, "status": status})

    for row in rows:
        if row["path"] == "file" and row["rw"] in ("randwrite", "randread") and row["bs"] == 4 * KiB:
            ratio = row["ratios"]["zramd/noop"]
            if row["data"] == "corpus":  # bounded by lzo's time per corpus page: reported, no target
                add(f"{row['name']}: zramd/noop (no target)", ratio, "reported", None)
                continue
            ok = None if ratio is None else ratio >= NOOP_GOAL
            add(f"{row['name']}: zramd/noop", ratio, f">= {NOOP_GOAL}", ok)
    for row in rows:
        if row["rw"] in ("write", "read") and row["bs"] in (128 * KiB, MiB):
            ratio = row["ratios"]["zramd/kernel"]
            ok = None if ratio is None else ratio >= KERNEL_GOAL
            add(f"{row['name']}: zramd/kernel", ratio, f">= {KERNEL_GOAL}", ok)
    if memory:
        kernel = memory.get("kernel")
        if kernel:
            off = memory["mem_used_total"] / kernel["mem_used_total"] - 1
            ok = abs(off) <= MEM_USED_TOLERANCE
        else:
            off, ok = None, None
        add("mem_used_total vs kernel (relative difference)", off, f"within ±{MEM_USED_TOLERANCE:.1%}", ok)
        allowance = RSS_BYTES_PER_PAGE * memory["pages"] + RSS_SLACK
        worst = max(p["rss"] - p["mem_used_total"] for p in memory["passes"])
        add(
            "daemon RSS - mem_used_total (worst pass), bytes",
            worst,
            f"<= {allowance} ({RSS_BYTES_PER_PAGE} B/page + 64 MiB)",
            worst <= allowance,
        )
        per_page = memory["passes"][0]["metadata_bytes_per_page"]
        add("metadata per page after the first whole-disk pass, bytes", per_page, f"<= {METADATA_GOAL}",
            per_page <= METADATA_GOAL)  # fmt: skip
        for key in ("rss", "mem_used_total"):
            first = memory["passes"][0][key]
            growth = max(p[key] for p in memory["passes"]) / first - 1
            add(
                f"{key} growth over {OVERWRITE_PASSES} overwrite passes",
                growth,
                f"<= {GROWTH_TOLERANCE:.0%}",
                growth <= GROWTH_TOLERANCE,
            )
    return found


_CPU_NOTE = (
    "cpu_s_per_gib: the daemon's utime+stime per GiB moved (zramd, noop); for the kernel "
    "target the machine's system CPU (system+irq+softirq, /proc/stat) as a proxy, which "
    "also counts fio's own system time. sys_s_per_gib: the machine's system CPU, every target."
)


def build_report(bench: Bench) -> dict[str, Any]:
    """The whole report of `bench`, as written to the JSON file."""
    rows = summarize(bench)
    options = bench.options
    targets: dict[str, Any] = {}
    for name in options.targets:
        if name in bench.skipped:
            targets[name] = {"skipped": bench.skipped[name]}
        elif name in bench.targets:
            t = bench.targets[name]
            targets[name] = {"file": t.file, "loop": t.loop, "pid": t.pid}
    return {
        "benchmark": "zramd fio matrix",
        "options": {
            "quick": options.quick,
            "repeat": options.repeat,
            "runtime": options.runtime,
            "size": options.size,
            "algorithm": options.algorithm,
            "targets": options.targets,
        },
        "machine": bench.info,
        "targets": targets,
        "notes": {"cpu": _CPU_NOTE, "ratios": "median over repetitions of zramd MB/s / other MB/s"},
        "cells": rows,
        "memory": bench.memory,
        "goals": goals(rows, bench.memory),
    }


# ---------------------------------------------------------------------------- text


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "n/a"
    if abs(value) >= 100_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def format_table(report: dict[str, Any]) -> str:
    header = [
        "cell",
        "target",
        "IOPS",
        "MB/s",
        "p50 µs",
        "p99 µs",
        "cpu s/GiB",
        "sys s/GiB",
        "vs noop",
        "vs kernel",
        "vs python",
    ]
    table = [header]
    for row in report["cells"]:
        first = True
        for name in TARGETS:
            med = row["median"].get(name)
            if med is None:
                continue
            ratios = row["ratios"] if name == "zramd" else {}
            table.append(
                [
                    row["name"] if first else "",
                    name,
                    _num(med["iops"], 0),
                    _num(med["mbps"]),
                    _num(med["p50_us"]),
                    _num(med["p99_us"]),
                    _num(med["cpu_s_per_gib"], 2) + ("*" if name == "kernel" else ""),
                    _num(med["sys_s_per_gib"], 2),
                    _ratio(ratios.get("zramd/noop")) if ratios else "",
                    _ratio(ratios.get("zramd/kernel")) if ratios else "",
                    _ratio(ratios.get("zramd/python")) if ratios else "",
                ]
            )
            first = False
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for r in table:
        cells = [c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    lines.append(
        "* kernel: the machine's system CPU as a proxy (there is no daemon); medians over repetitions"
    )
    return "\n".join(lines) + "\n"


def format_goals(report: dict[str, Any]) -> str:
    lines = []
    for goal in report["goals"]:
        value = goal["value"]
        if value is None:
            shown = "n/a"
        elif "ratio" in goal["goal"] or "zramd/" in goal["goal"]:
            shown = f"{value:.2f}x"
        elif "per page" in goal["goal"]:
            shown = f"{value:.1f} B"
        elif "bytes" in goal["goal"]:
            shown = format_size(int(value))
        else:
            shown = f"{value:+.2%}"
        lines.append(f"{goal['status']:>4}  {goal['goal']}: {shown} (target {goal['limit']})")
    return "\n".join(lines) + "\n"


def format_memory(report: dict[str, Any]) -> str:
    memory = report["memory"]
    if not memory:
        return "memory: not measured (zramd was not a target)\n"
    lines = [
        f"memory (corpus, disksize {format_size(memory['disksize'])}): idle daemon RSS "
        f"{format_size(memory['idle_rss'])}"
    ]
    for p in memory["passes"]:
        lines.append(
            f"  pass {p['pass']}: RSS {format_size(p['rss'])}, "
            f"mem_used_total {format_size(p['mem_used_total'])} ({p['mem_used_total']} B), "
            f"metadata {p['metadata_bytes_per_page']:.1f} B/page"
        )
    kernel = memory.get("kernel")
    if kernel:
        for p in kernel["passes"]:
            lines.append(
                f"  kernel zram0 pass {p['pass']}: mem_used_total {format_size(p['mem_used_total'])} "
                f"({p['mem_used_total']} B)"
            )
    else:
        lines.append(f"  kernel zram0: {report['targets'].get('kernel', {}).get('skipped', 'not a target')}")
    return "\n".join(lines) + "\n"
