"""`hwsim sweep SPEC.yaml`: budget what-if sweeps with resumable results and Pareto views."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def sweep(
        spec: Path = typer.Argument(..., help="Sweep spec YAML (axes: targets, models, bits, budgets)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default reports/sweep-<name>/). "
                                           "Re-running into the same folder skips finished points."),
        executor: str = typer.Option("local", "--executor", help="local (process pool) or dask."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                                help="Dask scheduler address tcp://host:port "
                                                     "(default: start a LocalCluster)."),
        workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (local pool / LocalCluster)."),
        chunk_size: int = typer.Option(250, "--chunk-size", min=1, help="Points per task (one Φ build, warm-started solves)."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    ) -> None:
        """Allocate bit widths with the ILP at every point of a budget/target/bit-set grid."""
        from hwsim.cli._paths import output_dir
        from hwsim.sweep import load_spec, run_sweep
        from hwsim.sweep.runner import validate_spec
        from hwsim.sweep.views import write_report

        s = load_spec(spec)
        validate_spec(s, where=str(spec))
        out_dir = output_dir(out or Path("reports") / f"sweep-{s.name}", "--out")
        outcome = run_sweep(s, out_dir, executor=executor, workers=workers, scheduler=scheduler,
                            chunk_size=chunk_size, progress=progress)
        report = write_report(out_dir, s.name, outcome.wall_s)
        typer.echo(f"{outcome.total} points: {outcome.skipped} already done, {outcome.evaluated} evaluated "
                   f"({outcome.failed} failed) in {outcome.wall_s:.2f} s")
        typer.echo(f"results: {out_dir / 'results.parquet'}")
        typer.echo(f"report:  {report}")
        if outcome.evaluated and outcome.failed == outcome.evaluated:
            typer.echo(f"error: all {outcome.evaluated} evaluated points failed (status 'error'); "
                       f"see the error column of {out_dir / 'results.parquet'}", err=True)
            raise typer.Exit(1)
