"""`hwsim allocate`: per-layer bit widths from the BMPQ ILP under device budgets.

Why: answers "which bit widths?" for a model on a target — Φ from the target's cost model, the
paper's objective (Σ sensitivity × rank), any mix of budgets, plus which budgets bind and what one
more KiB / ms / mJ would buy (LP dual prices). An infeasible budget exits 1 with the smallest
feasible value of each resource.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional

import typer

from hwsim.cli._choices import TableOrJson

from hwsim.errors import HwsimError


def _load_model(name: str):
    """A .tflite path, a shapes-only layer list (resnet18-cifar10, ...) or an MLPerf Tiny name."""
    from hwsim.models.layer_specs import BUILTIN_MODELS, builtin_model, from_tflite
    if name.endswith(".tflite"):
        if not Path(name).is_file():
            raise HwsimError(f"--model {name}: file not found")
        return from_tflite(name)
    if name not in BUILTIN_MODELS:
        try:
            from hwsim.models.registry import resolve
        except ImportError:
            resolve = None
        path = resolve(name) if resolve else None
        if path is not None:
            return from_tflite(path)
    return builtin_model(name)


def _with_first_last(spec, bits: int):
    """Re-fix the model's fixed (first/last) layers to `bits`, or free them with 0."""
    import dataclasses
    if bits < 0:
        raise HwsimError(f"--first-last-bits {bits}: use a positive width or 0 (no fixed layers)")
    layers = tuple(dataclasses.replace(s, fixed_bits=(bits or None)) if s.fixed_bits else s
                   for s in spec.layers)
    return dataclasses.replace(spec, layers=layers)


def _read_sensitivity(path: Path, layers: list[str], fixed=()) -> dict[str, float]:
    """layer -> value; every layer not in `fixed` needs a finite value ≥ 0 (HwsimError otherwise)."""
    import math

    if path.is_dir():
        raise HwsimError(f"--sensitivity {path}: is a directory, expected a file (a layer,value CSV)")
    if not path.exists():
        raise HwsimError(f"--sensitivity {path}: file not found")
    out: dict[str, float] = {}
    with path.open(newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or row[0].strip().startswith("#"):
                continue
            if len(row) < 2:
                raise HwsimError(f"{path}:{lineno}: expected 'layer,value', got {','.join(row)!r}")
            name, value = row[0].strip(), row[1].strip()
            try:
                out[name] = float(value)
            except ValueError:
                if lineno == 1:       # header row
                    continue
                raise HwsimError(f"{path}:{lineno}: sensitivity {value!r} is not a number") from None
            if not math.isfinite(out[name]) or out[name] < 0:
                raise HwsimError(f"{path}:{lineno}: sensitivity of {name} is {value!r}; use a finite "
                                 "value ≥ 0")
    if not out:
        raise HwsimError(f"--sensitivity {path}: no layer,value rows; write one row per layer, e.g. "
                         f"{layers[0] if layers else 'conv1'},1.0")
    unknown = [n for n in out if n not in layers]
    if unknown:
        raise HwsimError(f"{path}: unknown layer(s) {', '.join(unknown)}; model layers: {', '.join(layers)}")
    missing = [n for n in layers if n not in out and n not in fixed]
    if missing:
        raise HwsimError(f"{path}: no sensitivity for layer(s) {', '.join(missing)}; every non-fixed "
                         "layer needs a value (add a 'layer,value' row for each)")
    return out


def _short_run_enbg(model, bits: tuple[int, ...]) -> dict[str, float]:
    """ENBG of a 2-epoch BMPQ warm-up on digits (digits-cnn only)."""
    from hwsim.algorithms.bmpq_train import BmpqConfig, train_bmpq
    from hwsim.algorithms.bmpq_workloads import build_net, load_digits_split
    cfg = BmpqConfig(support=bits, epochs=2, warmup_epochs=2)
    net = build_net(model)
    res = train_bmpq(net, load_digits_split(), cfg, lambda e: None, progress=False)
    return res.final_enbg


def register(app: typer.Typer) -> None:
    @app.command()
    def allocate(
        model: str = typer.Option(..., "--model", help="Built-in model (resnet18-cifar10, vgg16-cifar10, "
                                  "digits-cnn, ...) or a .tflite file."),
        target: Optional[str] = typer.Option(None, "--target", help="Device profile name or YAML path "
                                             "(needed for memory/latency/energy budgets)."),
        budget: list[str] = typer.Option(..., "--budget", help="KIND=VALUE, repeatable: weights=1MiB (or a "
                                         "memory name), activations=64KiB, latency=20ms, energy=1mJ, "
                                         "compression=10x."),
        bits: str = typer.Option("2,4,8", "--bits", help="Candidate widths, comma-separated."),
        sensitivity: Optional[Path] = typer.Option(None, "--sensitivity", help="CSV of layer,value rows "
                                                   "(default: ENBG of a short run for digits-cnn, "
                                                   "uniform otherwise)."),
        objective: str = typer.Option("rank", "--objective", help="rank (paper: Σ sens×rank) or bits."),
        solver: str = typer.Option("highs", "--solver", help="highs (in-process) or cbc (PuLP)."),
        fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json."),
        first_last_bits: int = typer.Option(16, "--first-last-bits", help="Fixed width of the first and "
                                            "last layers (paper: 16); 0 lets the ILP choose them too."),
    ) -> None:
        """Choose per-layer bit widths that maximise sensitivity under the budgets."""
        from hwsim.ilp import Allocator, format_value
        from hwsim.phi import parse_budget, parse_budget_items, phi_table

        try:
            support = tuple(sorted({int(b) for b in bits.split(",") if b.strip()}))
        except ValueError:
            raise HwsimError(f"--bits {bits!r}: write comma-separated integers, e.g. 2,4,8") from None
        if not support:
            raise HwsimError("--bits is empty; write e.g. 2,4,8")
        from hwsim.cli._paths import check_target_arg

        check_target_arg(target)
        if sensitivity is not None and sensitivity.is_dir():
            raise HwsimError(f"--sensitivity {sensitivity}: is a directory, expected a file "
                             "(a layer,value CSV)")
        spec = _with_first_last(_load_model(model), first_last_bits)
        raw = parse_budget_items(budget)
        tgt = None
        if target is not None:
            from hwsim.target import load_target
            tgt = load_target(target)
        elif any(k != "compression" for k in raw):
            raise HwsimError("--target is required for memory/latency/energy budgets "
                             "(only compression=…x works without one)")
        phi = phi_table(spec, tgt, bits=support, resources=tuple(raw))
        budgets = {k: parse_budget(k, v, phi) for k, v in raw.items()}
        names = list(phi.layers)
        if sensitivity is not None:
            sens = _read_sensitivity(sensitivity, names, fixed=phi.fixed)
            source = f"file {sensitivity}"
        elif spec.name == "digits-cnn":
            sens = _short_run_enbg(spec, support)
            source = "ENBG from a 2-epoch BMPQ warm-up on digits"
        else:
            sens = {n: 1.0 for n in names}
            source = "uniform (no --sensitivity given)"
        alloc = Allocator(phi, sens, objective=objective, solver=solver).solve(budgets)
        out = {
            "model": spec.name, "target": getattr(tgt, "name", None), "solver": alloc.solver,
            "objective_kind": objective, "sensitivity_source": source,
            "layers": [{"name": n, "bits": alloc.bits[n], "sensitivity": sens.get(n, 0.0),
                        "rank": alloc.ranks[n],
                        "phi": {str(b): dict(phi.values[n][b]) for b in phi.candidates[n]}}
                       for n in names],
            "objective": alloc.objective, "totals": alloc.totals, "budgets": alloc.budgets,
            "slack": alloc.slack, "binding": alloc.binding, "duals": alloc.duals,
            "units": phi.units, "status": alloc.status,
        }
        if fmt is TableOrJson.json:
            typer.echo(json.dumps(out, indent=2))
            return
        u = phi.units
        typer.echo(f"model {spec.name} on {out['target'] or '(no target)'}; candidate widths "
                   f"{list(support)}; sensitivity: {source}")
        head = f"{'layer':<22} {'bits':>4} {'sens':>10}  " + "  ".join(f"{r:>12}" for r in phi.resources)
        typer.echo(head)
        for row in out["layers"]:
            vals = "  ".join(f"{format_value(phi.values[row['name']][row['bits']][r], u[r]):>12}"
                             for r in phi.resources)
            typer.echo(f"{row['name']:<22} {row['bits']:>4} {row['sensitivity']:>10.4g}  {vals}")
        typer.echo(f"objective (Σ sensitivity × {'rank' if objective == 'rank' else 'bits'}): "
                   f"{alloc.objective:.6g}")
        for r in budgets:
            dual = alloc.duals.get(r)
            per = {"B": 1024.0, "s": 1e-3, "J": 1e-3}.get(u[r], 1.0)
            unit = {"B": "KiB", "s": "ms", "J": "mJ"}.get(u[r], u[r])
            price = "n/a (peak budget)" if dual is None else f"{dual * per:.4g} per {unit}"
            typer.echo(f"  {r:<12} total {format_value(alloc.totals[r], u[r]):>12}  budget "
                       f"{format_value(budgets[r], u[r]):>12}  slack {format_value(alloc.slack[r], u[r]):>12}"
                       f"  {'BINDING' if r in alloc.binding else 'free   '}  dual {price}")
