"""Memory-over-time plot of a `MemoryResult` (live bytes per memory level at every op step).

Why: a peak number hides *where* it happens; the curve shows which ops set it and how much
headroom the arena plans leave against the lower bound and the capacity.
"""
from __future__ import annotations

from pathlib import Path

from hwsim.memory.analysis import MemoryResult


def plot_timeline(result: MemoryResult, path: str | Path | None = None, *, memories: list[str] | None = None):
    """Draw live bytes per op step for each memory (default: the arena memory); save to `path` if given."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    tl = result.timeline
    mems = memories or [result.arena_memory]
    fig, ax = plt.subplots(figsize=(9, 4))
    for m in mems:
        ax.step(tl["index"], tl[f"live_{m}"], where="mid", label=f"live bytes in {m}")
    for i, (planner, size) in enumerate(result.arena_bytes.items()):
        ax.axhline(size, color=f"C{i + 1}", linestyle="--", linewidth=0.9, label=f"arena {planner}: {size} B")
    cap = result.capacity_bytes.get(result.arena_memory)
    if cap is not None and cap <= 2 * max(result.arena_bytes.values(), default=0):
        ax.axhline(cap, color="red", linewidth=1.0, label=f"{result.arena_memory} capacity {cap} B")
    ax.set_xlabel("op step")
    ax.set_ylabel("bytes")
    ax.set_title(f"memory over time on {result.target}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
        plt.close(fig)
    return fig
