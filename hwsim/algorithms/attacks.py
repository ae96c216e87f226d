"""Sign-based black-box ℓ∞ attacks — SignHunter, RandSign, Simple — and their common harness.

Why: ZOQO's attack tables (docs/algorithms.md §1.11, §2) compare these attacks in four
environments. The attacks here are written once, against a *space* (float pixels, or integer
grid codes) and a loss *oracle*, so the ZOQO environment runs the very same algorithm on integer
codes: a step `x + ε·s` is an integer code addition and the projection an integer clamp.

Harness (§2.1, ash-aldujaili/blackbox-adv-examples-signhunter black_box_attack.py):
maximize per-example CE of the true label; examples misclassified at the start are excluded;
each step every example gets the suggested point, projected onto the ℓ∞ ball around the original
x0 and clamped to [lb, ub] (done examples are frozen); stop an example once misclassified;
failure rate = failures / (successes + failures); average queries over successes. All examples
step together (vectorized over the batch).

Deviations from the repo, each a parameter or noted:
  * budget per example: an example stops when *its* count reaches `max_loss_queries` (the repo
    stops the whole batch when any example reaches it; identical when all examples are charged the
    same, i.e. SignHunter and RandSign). The last step may overshoot the budget, as in the repo.
  * Simple: charged 1 query when the first (+δ) try is accepted, else 2 (`simple_query_count=
    "emulator"`); the repo charges 1 + [−δ accepted] although it always queries −δ ("repo").
    The repo also stores the left loss when the right move is accepted (a bug); we store the right
    loss unless `simple_repo_best_loss=True`.
  * The SignHunter ℓ(x_o) is cached between restarts (the repo recomputes the same value each step
    and does not charge it either).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from hwsim.errors import WorkloadError

METHODS = ("signhunter", "randsign", "simple")
SIMPLE_QUERY_COUNTS = ("emulator", "repo")

#: loss oracle: (points, rows) -> per-example loss (float64) of the examples `rows`
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: early-stop criterion: (points, rows) -> bool "misclassified" for the examples `rows`
CritFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class AttackParams:
    """Attack hyper-parameters (§2.5 defaults are set by the caller per dataset)."""

    method: str
    eps: float                               # ℓ∞ radius (in the space's units: pixels or codes)
    max_loss_queries: int = 10_000
    delta: float | None = None               # Simple's coordinate step
    seed: int = 0
    simple_query_count: str = "emulator"     # "emulator" | "repo" (see module doc)
    simple_repo_best_loss: bool = False      # reproduce the repo's best-loss bookkeeping bug
    project_queries: bool = False            # project every *queried* point too (ZOQO: codes must stay on the grid)

    def check(self) -> None:
        if self.method not in METHODS:
            raise WorkloadError(f"attack method {self.method!r} unknown; use one of {METHODS}")
        if self.max_loss_queries < 1:
            raise WorkloadError(f"max_loss_queries must be >= 1, got {self.max_loss_queries}")
        if self.method == "simple" and self.delta is None:
            raise WorkloadError("the simple attack needs `delta` (e.g. 0.1 on [0,1] MNIST, 2 on CIFAR 0-255)")
        if self.simple_query_count not in SIMPLE_QUERY_COUNTS:
            raise WorkloadError(f"simple_query_count {self.simple_query_count!r} unknown; "
                                f"use one of {SIMPLE_QUERY_COUNTS}")


@dataclass
class Box:
    """The feasible set: ℓ∞ ball of radius eps around x0, intersected with [lb, ub]."""

    x0: torch.Tensor
    eps: float
    lb: float
    ub: float

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Repo order: clamp to the ε-ball around the original x0, then clamp to [lb, ub]."""
        lo, hi = self.x0 - self.eps, self.x0 + self.eps
        return torch.clamp(torch.maximum(torch.minimum(x, hi), lo), self.lb, self.ub)


@dataclass
class AttackResult:
    """Per-example outcome. `correct0`: classified correctly at the start (the only ones counted)."""

    correct0: torch.Tensor                   # bool [N]
    success: torch.Tensor                    # bool [N]  (misclassified within budget, among correct0)
    queries: torch.Tensor                    # int64 [N] loss queries charged
    x_adv: torch.Tensor                      # final iterates
    iterations: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def successes(self) -> int:
        return int((self.success & self.correct0).sum())

    @property
    def failures(self) -> int:
        return int((~self.success & self.correct0).sum())

    @property
    def failure_rate(self) -> float:
        n = self.successes + self.failures
        return self.failures / n if n else float("nan")

    @property
    def avg_queries(self) -> float:
        mask = self.success & self.correct0
        return float(self.queries[mask].double().mean()) if mask.any() else float("nan")


def ns_sign(t: torch.Tensor) -> torch.Tensor:
    """Non-standard sign of the repo: sign(0) = +1."""
    s = torch.sign(t)
    return torch.where(s == 0, torch.ones_like(s), s)


# ---- the three attacks ---------------------------------------------------------------------------


class SignHunter:
    """Divide-and-conquer sign-flip search (§2.2, sign_attack.py)."""

    def __init__(self, params: AttackParams, box: Box, gen: torch.Generator) -> None:
        self.p, self.box = params, box
        self.xo: torch.Tensor | None = None
        self.sgn: torch.Tensor | None = None
        self.best: torch.Tensor | None = None
        self.base: torch.Tensor | None = None
        self.h = 0
        self.i = 0

    def _query(self, x: torch.Tensor) -> torch.Tensor:
        return self.box.project(x) if self.p.project_queries else x

    def _point(self, sgn: torch.Tensor) -> torch.Tensor:
        return self.xo + self.p.eps * sgn.view(self.xo.shape).to(self.xo.dtype)

    def suggest(self, xs: torch.Tensor, loss: LossFn, rows: torch.Tensor, new: bool):
        batch = xs.shape[0]
        dim = xs[0].numel()
        add = 0
        if new:
            self.xo, self.h, self.i = xs.clone(), 0, 0
        def full(points: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(batch, dtype=torch.float64)
            out[rows] = loss(self._query(points), rows)
            return out

        if self.i == 0 and self.h == 0:
            self.sgn = torch.ones(batch, dim, dtype=torch.int64)
            self.base = full(self.xo)
            self.best = (full(self._point(self.sgn)) - self.base) / self.p.eps
            add = 3          # ℓ(x_o) and the two evaluations of this first step (repo)
        chunk = math.ceil(dim / 2 ** self.h)
        istart, iend = self.i * chunk, min(dim, (self.i + 1) * chunk)
        self.sgn[:, istart:iend] *= -1
        est = (full(self._point(self.sgn)) - self.base) / self.p.eps
        active = torch.zeros(batch, dtype=torch.bool)
        active[rows] = True
        worse = (est < self.best) & active
        self.sgn[worse, istart:iend] *= -1                 # ties keep the flip
        self.best = torch.where(est >= self.best, est, self.best)
        new_xs = self._point(self.sgn)
        self.i += 1
        if self.i == 2 ** self.h or iend == dim:
            self.h += 1
            self.i = 0
            if self.h == math.ceil(math.log2(dim)) + 1:     # restart from the current iterate
                self.xo = xs.clone()
                self.h = 0
        return new_xs, torch.full((batch,), 1 + add, dtype=torch.int64)


class RandSign:
    """A fresh random vertex x0 + ε·s every step, no loss comparison (§2.3, random_attack.py)."""

    def __init__(self, params: AttackParams, box: Box, gen: torch.Generator) -> None:
        self.p, self.box, self.gen = params, box, gen
        self.xo: torch.Tensor | None = None

    def suggest(self, xs: torch.Tensor, loss: LossFn, rows: torch.Tensor, new: bool):
        if new:
            self.xo = xs.clone()
        batch = xs.shape[0]
        sgn = ns_sign(torch.rand(batch, xs[0].numel(), generator=self.gen, dtype=torch.float64) - 0.5)
        new_xs = self.xo + self.p.eps * sgn.to(torch.int64).view(xs.shape).to(xs.dtype)
        return new_xs, torch.ones(batch, dtype=torch.int64)


class Simple:
    """The SignHunter repo's port of SimBA (§2.4, simple_attack.py): CE up, +δ first then −δ."""

    def __init__(self, params: AttackParams, box: Box, gen: torch.Generator) -> None:
        self.p, self.box, self.gen = params, box, gen
        self.i = 0
        self.perm: torch.Tensor | None = None
        self.best: torch.Tensor | None = None

    def suggest(self, xs: torch.Tensor, loss: LossFn, rows: torch.Tensor, new: bool):
        batch, dim = xs.shape[0], xs[0].numel()
        query = self.box.project if self.p.project_queries else (lambda t: t)
        add = torch.zeros(batch, dtype=torch.int64)
        if new:
            self.i = 0
            self.perm = torch.rand(batch, dim, generator=self.gen).argsort(dim=1)
        if self.i == 0:
            self.best = torch.zeros(batch, dtype=torch.float64)
            self.best[rows] = loss(query(xs), rows)
            add += 1
        idx = self.perm[:, self.i % dim]
        onehot = torch.zeros(batch, dim, dtype=torch.int64).scatter(1, idx.unsqueeze(1), 1).view(xs.shape)
        step = (self.p.delta * onehot).to(xs.dtype)
        bshape = (batch,) + (1,) * (xs.dim() - 1)
        left = xs + step
        left_loss = torch.full((batch,), -math.inf, dtype=torch.float64)
        left_loss[rows] = loss(query(left), rows)
        acc_left = left_loss > self.best
        self.best = torch.where(acc_left, left_loss, self.best)
        new_xs = torch.where(acc_left.view(bshape), left, xs)
        right = xs - step
        need = rows[~acc_left[rows]] if self.p.simple_query_count == "emulator" else rows
        right_loss = torch.full((batch,), -math.inf, dtype=torch.float64)
        if need.numel():
            right_loss[need] = loss(query(right), need)
        acc_right = (right_loss > self.best) & ~acc_left
        stored = left_loss if self.p.simple_repo_best_loss else right_loss
        self.best = torch.where(acc_right, stored, self.best)
        new_xs = torch.where(acc_right.view(bshape), right, new_xs)
        self.i += 1
        emulator = add + 1 + (~acc_left).to(torch.int64)
        repo = add + 1 + acc_right.to(torch.int64)
        self.other_charge = repo if self.p.simple_query_count == "emulator" else emulator
        return new_xs, (emulator if self.p.simple_query_count == "emulator" else repo)


ATTACKS = {"signhunter": SignHunter, "randsign": RandSign, "simple": Simple}


# ---- harness -------------------------------------------------------------------------------------


def run_attack(x0: torch.Tensor, loss: LossFn, crit: CritFn, params: AttackParams, *, lb: float,
               ub: float, progress: Callable[[int], None] | None = None) -> AttackResult:
    """Attack every example of `x0` together (vectorized); returns per-example outcomes.

    `loss(points, rows)` must return the per-example CE of the examples `rows` (points holds only
    those rows); `crit(points, rows)` whether they are misclassified. `x0` may be float pixels or
    int64 grid codes — the attack arithmetic is the same.
    """
    params.check()
    gen = torch.Generator().manual_seed(params.seed)
    batch = x0.shape[0]
    box = Box(x0.clone(), params.eps, lb, ub)
    all_rows = torch.arange(batch)
    done = crit(x0, all_rows).clone()
    correct0 = ~done
    queries = torch.zeros(batch, dtype=torch.int64)
    other_queries = torch.zeros(batch, dtype=torch.int64)
    exhausted = torch.zeros(batch, dtype=torch.bool)
    xs = x0.clone()
    attack = ATTACKS[params.method](params, box, gen)
    bshape = (batch,) + (1,) * (x0.dim() - 1)

    def lossr(points: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return loss(points[rows], rows)

    its = 0
    new = True
    while True:
        active = ~(done | exhausted)
        if not active.any():
            break
        rows = all_rows[active]
        sugg, charge = attack.suggest(xs, lossr, rows, new)
        new = False
        frozen = (~active).view(bshape)
        xs = torch.where(frozen, xs, box.project(sugg))
        queries += torch.where(active, charge, torch.zeros_like(charge))
        other = getattr(attack, "other_charge", None)
        if other is not None:        # Simple: the same run counted the other way (repo vs emulator)
            other_queries += torch.where(active, other, torch.zeros_like(other))
        mis = torch.zeros(batch, dtype=torch.bool)
        mis[rows] = crit(xs[rows], rows)
        done |= mis
        exhausted |= (queries >= params.max_loss_queries) & ~done
        its += 1
        if progress is not None:
            progress(its)
    success = done & correct0
    res = AttackResult(correct0, success, queries, xs, its)
    if params.method == "simple":
        key = "queries_repo_count" if params.simple_query_count == "emulator" else "queries_emulator_count"
        res.extra[key] = other_queries
    return res
