"""The BMPQ training schedule: warm-up, NBG/ENBG per epoch interval, ILP re-assignment.

Why separate from bmpq.py: the primitives (quantizers, exact layers, event emission) are reused by
shapes-only costing, while this module owns the schedule (docs/algorithms.md §3.3–3.5):
  1. warm-up for `warmup_epochs` at max(support) (first/last layers fixed at 16 bits);
  2. per minibatch: NBG_l from the gradient wrt w^q (closed form), averaged over the epoch;
  3. at the end of each interval: ENBG_l = mean of the epoch NBGs → ILP (paper objective
     −ENBG·Ω) under the user's budgets → new widths; ResNet shortcuts tied to their input layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from hwsim.algorithms.bmpq import QNet, loss_and_trace, nbg
from hwsim.compression import compression_ratio
from hwsim.errors import HwsimError
from hwsim.trace import Trace


@dataclass
class BmpqConfig:
    support: tuple[int, ...] = (4, 2)
    first_last_bits: int = 16
    epochs: int = 20
    warmup_epochs: int = 4
    interval_epochs: int | list[int] = 4       # int: periodic; list: aperiodic interval lengths
    batch_size: int = 64
    lr: float = 0.05
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    momentum: float = 0.9                       # [A] not stated in the paper
    weight_decay: float = 5e-4                  # [A]
    alpha_init: float = 4.0                     # [A] PACT α0 (PACT used 10 for ImageNet scales)
    alpha_decay: float = 5e-4                   # [A] L2 on α, as in PACT
    ternary_at_2: bool = True
    objective: str = "rank"                     # paper; "bits" = variant
    budgets: dict[str, Any] = field(default_factory=lambda: {"compression": "9x"})
    seed: int = 0

    @property
    def q_max(self) -> int:
        return max(self.support)

    def boundaries(self) -> list[int]:
        """Epoch counts after which the ILP re-assigns widths (end of warm-up and each interval)."""
        out, e = [], self.warmup_epochs
        lengths = self.interval_epochs
        k = 0
        while e < self.epochs:
            out.append(e)
            step = lengths[min(k, len(lengths) - 1)] if isinstance(lengths, list) else lengths
            if step <= 0:
                raise HwsimError(f"bmpq: interval_epochs must be positive, got {lengths}")
            e += step
            k += 1
        return out


@dataclass
class IntervalRecord:
    end_epoch: int
    enbg: dict[str, float]
    bits_before: dict[str, int]
    bits_after: dict[str, int]
    objective: float
    totals: dict[str, float]
    binding: list[str]


@dataclass
class BmpqResult:
    accuracy: float
    train_accuracy: float
    bits: dict[str, int]
    compression_ratio: float
    intervals: list[IntervalRecord]
    epoch_log: list[dict]
    final_enbg: dict[str, float]


class EnbgTracker:
    """Running NBG mean over the minibatches of an epoch, then the mean over the interval's epochs."""

    def __init__(self, names: list[str]):
        self.names = names
        self._batch_sum = {n: 0.0 for n in names}
        self._batches = 0
        self._epochs: list[dict[str, float]] = []

    def add_batch(self, values: dict[str, float]) -> None:
        for n, v in values.items():
            self._batch_sum[n] += v
        self._batches += 1

    def end_epoch(self) -> None:
        if self._batches:
            self._epochs.append({n: self._batch_sum[n] / self._batches for n in self.names})
        self._batch_sum = {n: 0.0 for n in self.names}
        self._batches = 0

    def enbg(self) -> dict[str, float]:
        if not self._epochs:
            return {n: 0.0 for n in self.names}
        return {n: sum(e[n] for e in self._epochs) / len(self._epochs) for n in self.names}

    def reset(self) -> None:
        self._epochs = []


def _accuracy(net: QNet, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    correct = 0
    off = Trace(enabled=False)
    with torch.no_grad():
        for i in range(0, len(x), batch):
            _, logits, _ = loss_and_trace(net, x[i:i + batch], None, off)
            correct += int((logits.argmax(1) == y[i:i + batch]).sum())
    return correct / max(1, len(x))


def train_bmpq(net: QNet, data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
               cfg: BmpqConfig, allocate: Callable[[dict[str, float]], Any], *,
               progress: bool = True) -> BmpqResult:
    """Train `net` with BMPQ. `allocate(enbg) -> Allocation` solves the ILP for new widths.

    Runs torch single-threaded: the tensors are tiny, and intra-op threads only contend on a
    shared CPU (measured: several times more CPU time with 2 threads on a busy 2-core machine).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(net, data, cfg, allocate, progress)
    finally:
        torch.set_num_threads(threads)


def _train(net: QNet, data, cfg: BmpqConfig, allocate, progress: bool) -> BmpqResult:
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(cfg.seed)
    fixed = {s.name: s.fixed_bits for s in net.model_spec.layers if s.fixed_bits}
    net.set_bits({q.name: fixed.get(q.name, cfg.q_max) for q in net.layers()})
    alphas = [q.alpha for q in net.layers() if q.alpha is not None]
    weights = [p for n, p in net.named_parameters() if not n.endswith("alpha")]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": cfg.weight_decay},
                           {"params": alphas, "weight_decay": cfg.alpha_decay}],
                          lr=cfg.lr, momentum=cfg.momentum)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.lr_milestones), cfg.lr_gamma)
    names = [q.name for q in net.layers()]
    tracker = EnbgTracker(names)
    boundaries = set(cfg.boundaries())
    intervals: list[IntervalRecord] = []
    epoch_log: list[dict] = []
    off = Trace(enabled=False)
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.epochs, desc="bmpq", unit="epoch", leave=False)
    for epoch in range(cfg.epochs):
        net.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        total_loss, seen = 0.0, 0
        for i in range(0, len(x_tr), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss, _, _ = loss_and_trace(net, x_tr[idx], y_tr[idx], off)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            tracker.add_batch({q.name: (nbg(q.weight, q._w_fq.grad, cfg.q_max)
                                        if q._w_fq.grad is not None else 0.0) for q in net.layers()})
            opt.step()
            with torch.no_grad():
                for a in alphas:
                    a.clamp_(min=1e-3)
            total_loss += float(loss.detach()) * len(idx)
            seen += len(idx)
        sched.step()
        tracker.end_epoch()
        log = {"epoch": epoch + 1, "loss": total_loss / seen, "bits": net.bits()}
        if epoch + 1 in boundaries:
            enbg = tracker.enbg()
            before = net.bits()
            alloc = allocate(enbg)
            net.set_bits(alloc.bits)
            intervals.append(IntervalRecord(epoch + 1, enbg, before, dict(alloc.bits),
                                            alloc.objective, dict(alloc.totals), list(alloc.binding)))
            tracker.reset()
        if bar is not None:
            bar.set_postfix(loss=f"{log['loss']:.3f}")
            bar.update(1)
        epoch_log.append(log)
    if bar is not None:
        bar.close()
    net.eval()
    acc = _accuracy(net, x_te, y_te)
    tr_acc = _accuracy(net, x_tr, y_tr)
    epoch_log[-1]["test_accuracy"] = acc
    bits = net.bits()
    ratio = float(compression_ratio(net.model_spec, bits))
    return BmpqResult(acc, tr_acc, bits, ratio, intervals, epoch_log, tracker.enbg())


def plot_history(result: BmpqResult, out_dir) -> dict[str, Any]:
    """ENBG per layer per interval, and the width assignment after each interval (heat map)."""
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    if not result.intervals:
        return files
    names = list(result.intervals[0].enbg)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(result.intervals)
    for k, rec in enumerate(result.intervals):
        ax.bar([i + k * width for i in range(len(names))], [rec.enbg[n] for n in names], width,
               label=f"epoch {rec.end_epoch}")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=45, ha="right")
    ax.set_ylabel("ENBG")
    ax.set_title("ENBG per layer at the end of each epoch interval")
    ax.legend(fontsize=7)
    fig.tight_layout()
    files["enbg"] = out / "bmpq_enbg.png"
    fig.savefig(files["enbg"], dpi=120)
    plt.close(fig)

    cols = [result.intervals[0].bits_before] + [r.bits_after for r in result.intervals]
    labels = ["warm-up"] + [f"after ep {r.end_epoch}" for r in result.intervals]
    grid = [[c[n] for c in cols] for n in names]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(cols), 0.4 * len(names) + 1.2))
    im = ax.imshow([[math.log2(v) for v in row] for row in grid], cmap="viridis", aspect="auto")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            changed = j > 0 and v != grid[i][j - 1]
            ax.text(j, i, f"{v}{'*' if changed else ''}", ha="center", va="center",
                    color="white" if v < 8 else "black", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_title("bit widths per interval (* = changed)")
    fig.colorbar(im, ax=ax, label="log2(bits)")
    fig.tight_layout()
    files["bits"] = out / "bmpq_bits.png"
    fig.savefig(files["bits"], dpi=120)
    plt.close(fig)
    return files
