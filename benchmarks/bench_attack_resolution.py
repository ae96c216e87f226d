"""Why Simple's failure rate on the b=8 integer model differs from FP: the loss resolution of
8-bit activations for single-pixel ±δ moves (the evidence behind workloads/zoqo-attack-digits.yaml).

Simple accepts a coordinate move only if the loss strictly increases. For every test image, at a
random point of the lattice Simple walks (x0 + δ·k, |k| ≤ 3, inside the ε-ball ∩ [0,1]) and for every
pixel and sign, this compares the loss change of the move on the float model and on the integer
model (weights 8 bits; activations 8 bits, then 16 bits): how often the integer loss does not move
at all (a certain reject) and how often its sign agrees with the float one. With `--attack` it also
runs Simple (projected queries, 10,000 queries) on FP and on both integer models.

    python benchmarks/bench_attack_resolution.py [--examples 100] [--attack]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from hwsim.algorithms.adv_train import PGDConfig
from hwsim.algorithms.attack_envs import EnvSettings, run_environment
from hwsim.algorithms.attack_qmodel import IntegerClassifier
from hwsim.algorithms.attack_setup import prepare
from hwsim.algorithms.attack_workloads import _default_cache
from hwsim.algorithms.attacks import AttackParams

ROOT = Path(__file__).resolve().parent.parent


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.double(), y, reduction="none")


def probe(model, qm: IntegerClassifier, x0: torch.Tensor, y: torch.Tensor, eps: float, delta: float,
          seed: int = 1) -> tuple[float, float, float]:
    """(share of moves with integer loss change exactly 0, same for FP, sign agreement when both move)."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(-3, 4, x0.shape, generator=g).double()
    xs = torch.maximum(torch.minimum((x0.double() + delta * k).clamp(0, 1).float(), x0 + eps), x0 - eps)
    d = xs[0].numel()
    with torch.no_grad():
        base_fp = _ce(model(xs), y)
    base_q = _ce(qm.logits(xs), y)
    tot = zq = zf = both = agree = 0
    for sgn in (1, -1):
        for q in range(d):
            e = torch.zeros(d)
            e[q] = sgn * delta
            xq = torch.maximum(torch.minimum(xs + e.view(xs.shape[1:]), x0 + eps), x0 - eps).clamp(0, 1)
            moved = (xq - xs).abs().flatten(1).amax(1) > 0
            with torch.no_grad():
                dfp = _ce(model(xq), y) - base_fp
            dq = _ce(qm.logits(xq), y) - base_q
            tot += int(moved.sum())
            zq += int(((dq == 0) & moved).sum())
            zf += int(((dfp == 0) & moved).sum())
            nz = moved & (dq != 0) & (dfp != 0)
            both += int(nz.sum())
            agree += int((nz & (torch.sign(dq) == torch.sign(dfp))).sum())
    return zq / tot, zf / tot, agree / max(both, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100, help="first N test images")
    ap.add_argument("--attack", action="store_true", help="also run Simple (slow: minutes)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = yaml.safe_load((ROOT / "workloads" / "zoqo-attack-digits.yaml").read_text())
    pgd = PGDConfig(**{**spec["adv_train"], "seed": spec.get("seed", 0)})
    setup = prepare("digits", path=None, model_kind=spec.get("model", "mlp"), which=["natural", "adversarial"],
                    epochs=spec["train_epochs"], pgd=pgd, seed=spec.get("seed", 0), cache_dir=_default_cache(),
                    model_args=spec.get("model_args"))
    x0, y = setup.x_test[:args.examples], setup.y_test[:args.examples]
    eps, delta = float(spec["eps"]), float(spec["delta"])
    print("| model | integer model | loss change = 0 (int) | loss change = 0 (FP) | sign agreement | Simple fail (int) |")
    print("|---|---|---|---|---|---|")
    fp_fail = {}
    for kind in ("natural", "adversarial"):
        model = setup.models[kind]
        if args.attack:
            p = AttackParams("simple", eps=eps, delta=delta, max_loss_queries=10_000, seed=0, project_queries=True)
            fp_fail[kind] = run_environment("fp", p, model, None, x0, y, EnvSettings(bits=8)).failure_rate
        for act_bits in (8, 16):
            t = time.perf_counter()
            qm = IntegerClassifier(model, setup.x_train[:512], bits=8, lb=0.0, ub=1.0, act_bits=act_bits, name="q")
            zq, zf, agree = probe(model, qm, x0, y, eps, delta)
            fail = "—"
            if args.attack:
                p = AttackParams("simple", eps=eps, delta=delta, max_loss_queries=10_000, seed=0, project_queries=True)
                fail = f"{run_environment('quant_model', p, model, qm, x0, y, EnvSettings(bits=8)).failure_rate:.3f}"
            print(f"| {kind} | w8 / a{act_bits} | {zq:.3f} | {zf:.3f} | {agree:.3f} | {fail} |  ({time.perf_counter() - t:.0f} s)")
    if fp_fail:
        print("Simple FP failure rate (projected queries): " + ", ".join(f"{k} {v:.3f}" for k, v in fp_fail.items()))


if __name__ == "__main__":
    main()
