"""The benchmark's chart: a PNG of zramd's throughput ratios per cell, drawn with matplotlib.

Owns: checking that matplotlib is there before a run starts, and drawing the report's ratios
(zramd/noop and zramd/kernel) with the target lines.

Must not: import matplotlib at module level (everything else of the benchmark works without it),
compute anything the report does not already hold, or run anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.report import KERNEL_GOAL, NOOP_GOAL
from zramd.core.errors import UserError
from zramd.core.units import format_size


def require_matplotlib() -> None:
    """UserError unless matplotlib can be imported (checked before a run, not after it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("matplotlib is needed for the chart (pip install matplotlib)") from None


def write_png(report: dict[str, Any], path: Path) -> None:
    """A horizontal bar chart of zramd/noop and zramd/kernel per cell, with the goal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["cells"]
    names = [row["name"] for row in rows]
    height = max(3.0, 0.3 * len(rows) + 1.8)
    fig, ax = plt.subplots(figsize=(10, height))
    ys = list(range(len(rows)))
    for offset, key, color in ((-0.2, "zramd/noop", "tab:blue"), (0.2, "zramd/kernel", "tab:orange")):
        values = [row["ratios"][key] for row in rows]
        ax.barh(
            [y + offset for y, v in zip(ys, values, strict=True) if v is not None],
            [v for v in values if v is not None],
            height=0.4,
            color=color,
            label=key,
        )
        for y, v in zip(ys, values, strict=True):
            if v is not None:
                ax.text(v * 1.02, y + offset, f"{v:.2f}", va="center", fontsize=6)
    ax.axvline(NOOP_GOAL, color="tab:blue", linestyle="--", linewidth=1, label=f"goal vs noop ({NOOP_GOAL}x)")
    ax.axvline(
        KERNEL_GOAL, color="tab:orange", linestyle="--", linewidth=1, label=f"goal vs kernel ({KERNEL_GOAL}x)"
    )
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ticks = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0, 2.0]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_yticks(ys)
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("zramd throughput / other target's (median over repetitions, log scale)")
    options = report["options"]
    machine = report["machine"]
    ax.set_title(
        f"zramd {options['algorithm']}, {format_size(options['size'])}, {options['repeat']}x"
        f"{options['runtime']:g}s per cell, commit {str(machine.get('git_commit', ''))[:10]}",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    shown = [v for row in rows for v in row["ratios"].values() if v is not None] or [1.0]
    ax.set_xlim(min(0.3, min(shown) / 1.5), max(1.5, max(shown) * 1.4))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
