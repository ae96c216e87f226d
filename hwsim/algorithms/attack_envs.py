"""The four attack environments of ZOQO Tables I–III: FP, Quant. Model, Post Quant., ZOQO (§1.11).

Why: the same attack (attacks.py) is run against different (model, input-space) pairs; this
module builds the loss oracle and early-stop criterion for each and, for ZOQO, maps the attack
onto the integer b-bit grid of [lb, ub].

  fp           FP model, FP attack.
  quant_model  b-bit integer model (attack_qmodel.IntegerClassifier), FP attack.
  post_quant   FP attack (on `pq_attack_model`, default the quantized model — the paper's PQ and QM
               failure rates track each other, which an attack on the FP model could not give), then
               the final adversarial input is rounded to the b-bit grid and re-judged on the
               quantized model ([A]: rounding to nearest may leave the ε-ball by ≤ s/2).
  zoqo         the input is b-bit codes c ∈ {0..2^b−1} throughout; ε_q = m_ε·s and δ_q = m_δ·s
               (attack_grid.snap_steps); steps are integer code additions, the projection an
               integer clamp, queried points are projected too (a code outside the grid does not
               exist); the integer model consumes the codes directly (re-coded to its input width
               by integer arithmetic). Only the CE of the final logits is FP.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwsim.algorithms.attack_grid import (dequantize_codes, grid_step, quantize_codes,
                                          snap_steps)
from hwsim.algorithms.attack_qmodel import IntegerClassifier
from hwsim.algorithms.attacks import AttackParams, AttackResult, run_attack
from hwsim.errors import WorkloadError

ENVIRONMENTS = ("fp", "quant_model", "post_quant", "zoqo")
ENV_LABELS = {"fp": "FP", "quant_model": "Quant. Model", "post_quant": "Post Quant.", "zoqo": "ZOQO"}


@dataclass
class EnvSettings:
    """[A] choices of the environments, with their documented defaults."""

    bits: int = 8
    lb: float = 0.0
    ub: float = 1.0
    small_eps_rule: str = "one_step"         # ε < s: "one_step" (ε_q = s) or "floor" (possibly 0)
    pq_attack_model: str = "quant"           # which model the Post-Quant. FP attack queries: quant | fp
    zoqo_project_queries: bool = True        # ZOQO queries stay on the grid


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.to(torch.float64), y, reduction="none")


def _fp_oracles(model: nn.Module, y: torch.Tensor):
    def logits(pts: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(pts.to(torch.float32))
    return _oracles_from(logits, y)


def _oracles_from(logits_fn: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor):
    def loss(pts: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return _ce(logits_fn(pts), y[rows])

    def crit(pts: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return logits_fn(pts).argmax(dim=1) != y[rows]
    return loss, crit


def zoqo_params(params: AttackParams, settings: EnvSettings) -> tuple[AttackParams, dict]:
    """Snap ε (and δ) to integer numbers of grid steps; returns the code-space params and a record."""
    s = grid_step(settings.lb, settings.ub, settings.bits)
    m_eps = snap_steps(params.eps, s, settings.small_eps_rule)
    m_delta = snap_steps(params.delta, s, settings.small_eps_rule) if params.delta is not None else None
    snapped = replace(params, eps=m_eps, delta=m_delta, project_queries=settings.zoqo_project_queries)
    record = {"grid_step": s, "eps_steps": m_eps, "eps_q": m_eps * s,
              "delta_steps": m_delta, "delta_q": None if m_delta is None else m_delta * s}
    return snapped, record


def run_environment(env: str, params: AttackParams, model: nn.Module, qmodel: IntegerClassifier | None,
                    x: torch.Tensor, y: torch.Tensor, settings: EnvSettings,
                    progress: Callable[[int], None] | None = None) -> AttackResult:
    """Run one attack in one environment on examples (x float in [lb, ub], y int64)."""
    if env not in ENVIRONMENTS:
        raise WorkloadError(f"attack environment {env!r} unknown; use one of {ENVIRONMENTS}")
    if env != "fp" and qmodel is None:
        raise WorkloadError(f"environment {env!r} needs the quantized model")
    lb, ub, bits = settings.lb, settings.ub, settings.bits
    if env == "fp":
        loss, crit = _fp_oracles(model, y)
        return run_attack(x, loss, crit, params, lb=lb, ub=ub, progress=progress)
    q_loss, q_crit = _oracles_from(qmodel.logits, y)
    if env == "quant_model":
        return run_attack(x, q_loss, q_crit, params, lb=lb, ub=ub, progress=progress)
    if env == "post_quant":
        if settings.pq_attack_model not in ("quant", "fp"):
            raise WorkloadError(f"pq_attack_model must be 'quant' or 'fp', got {settings.pq_attack_model!r}")
        loss, crit = (q_loss, q_crit) if settings.pq_attack_model == "quant" else _fp_oracles(model, y)
        res = run_attack(x, loss, crit, params, lb=lb, ub=ub, progress=progress)
        x_q = dequantize_codes(quantize_codes(res.x_adv, lb, ub, bits), lb, ub, bits)
        rows = torch.arange(x.shape[0])
        fooled = q_crit(x_q, rows)
        res.extra["success_before_quant"] = res.success.clone()
        res.success = res.success & fooled
        res.extra["linf_after_quant"] = float((x_q - x).abs().amax()) if x.numel() else 0.0
        res.x_adv = x_q
        return res
    # zoqo: integer codes on the b-bit grid throughout
    zp, record = zoqo_params(params, settings)
    c0 = quantize_codes(x, lb, ub, bits)

    def logits_codes(codes: torch.Tensor) -> torch.Tensor:
        return qmodel.logits_from_codes(qmodel.grid_to_input_codes(codes, bits))
    z_loss, z_crit = _oracles_from(logits_codes, y)
    res = run_attack(c0, z_loss, z_crit, zp, lb=0, ub=2 ** bits - 1, progress=progress)
    res.extra.update(record)
    res.extra["codes"] = res.x_adv
    res.x_adv = dequantize_codes(res.x_adv, lb, ub, bits)
    return res
