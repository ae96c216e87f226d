"""`hwsim calibrate`: fit a profile's runtime efficiency to measured latencies, write a profile that extends it."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Register the command on the main app."""

    @app.command("calibrate")
    def calibrate_cmd(
        target: str = typer.Option(..., "--target", "-t", help="Profile to calibrate (name or path); the output extends it."),
        measurements: Path = typer.Option(..., "--measurements", "-m",
                                          help="CSV with columns model (.tflite path), latency_ms, optional energy_uJ, label."),
        out: Path = typer.Option(..., "--out", "-o", help="Where to write the calibrated profile YAML."),
        params: str = typer.Option("mac,dw_mac", "--params",
                                   help="Comma-separated parameters to fit: op classes (mac, dw_mac, mac+dw_mac tied, "
                                        "elementwise, compare, lookup), memory:<level> (bandwidth efficiency of a "
                                        "memory level, e.g. memory:flash), per_op, per_inference, per_output (time "
                                        "per output element of a MAC op on a CPU)."),
        kernel_model: bool | None = typer.Option(
            None, "--kernel-model/--no-kernel-model",
            help="Price MAC work with the CPU kernel table's instruction counts (compute.cpu.kernels: fully "
                 "connected, im2col convolution, 1x1, depthwise, scalar leftovers) and store "
                 "runtime_efficiency.kernel_model in the profile. Default: on when the target's CPU has a "
                 "kernel table (the shipped MCU profiles), otherwise off."),
        kernel_library: str = typer.Option(
            "", "--kernel-library",
            help="CMSIS-NN version the measured stack ran, from hwsim/runtimes/cmsis_nn.yaml (e.g. cmsis_5@51263182): "
                 "its loop counts replace those of the target's kernel table and are written into the profile "
                 "(compute.cpu.kernels). Default: the target's table. Needs the kernel model."),
        name: str = typer.Option("", "--name", help="Name of the new profile (default: the output file's stem)."),
        fitted_on: str = typer.Option("", "--fitted-on", help="Text stored as runtime_efficiency.fitted_on "
                                                              "(default: the measurements file and its models)."),
    ) -> None:
        """Fit runtime_efficiency (compute efficiency per op class, overheads) to measured latencies."""
        from hwsim.cost.calibrate import calibrate, cpu_kernel_unit, profile_yaml, read_measurements, with_kernel_table
        from hwsim.errors import HwsimError
        from hwsim.target import load_target
        from hwsim.target.loader import find_profile

        from hwsim.cli._paths import check_target_arg, input_file, output_file

        check_target_arg(target)
        input_file(measurements, "--measurements")
        output_file(out, "--out", "profile.yaml")   # checked before the fit, so a bad --out never wastes it
        if out.suffix.lower() not in (".yaml", ".yml"):
            raise HwsimError(f"--out {out}: a device profile is a YAML file; use a name ending in .yaml")
        base = load_target(target)
        if kernel_model is None:
            kernel_model = cpu_kernel_unit(base) is not None
        kernels = None
        if kernel_library:
            from hwsim.runtimes import cmsis_nn_profile_kernels, load_runtime

            versions = load_runtime("cmsis_nn")["versions"]
            if kernel_library not in versions:
                raise HwsimError(f"--kernel-library {kernel_library!r} is not in hwsim/runtimes/cmsis_nn.yaml; "
                                 f"choose from {sorted(versions)}")
            if not kernel_model:
                raise HwsimError("--kernel-library sets the CPU kernel table's loop counts, which only the kernel "
                                 "model uses; drop --no-kernel-model or --kernel-library")
            kernels = cmsis_nn_profile_kernels(kernel_library, versions[kernel_library])
            base = with_kernel_table(base, kernels)
        meas = read_measurements(measurements)
        plist = tuple(p.strip() for p in params.split(",") if p.strip())
        if len(plist) > len(meas):
            raise HwsimError(f"--params asks for {len(plist)} parameters but {measurements} has only "
                             f"{len(meas)} distinct models; fit at most as many parameters as measured "
                             "models (add models or drop parameters)")
        fit_, _ = calibrate(base, meas, plist, kernel_model=kernel_model)
        new_name = name or out.stem
        base_path = find_profile(target)
        if base_path is not None and Path(target).suffix in (".yaml", ".yml"):
            try:
                extends = str(Path(base_path).resolve().relative_to(out.resolve().parent))
            except ValueError:
                extends = str(Path(base_path).resolve())
        else:
            extends = base.name
        fitted = fitted_on or f"{measurements.name}: " + ", ".join(
            f"{m.label}={m.latency_s * 1e3:.4g} ms" for m in meas)
        text = profile_yaml(extends, new_name, fit_, fitted, {}, base, kernels=kernels,
                            kernel_unit=cpu_kernel_unit(base) or "cpu")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        except OSError as err:
            from hwsim.cli._paths import os_error

            typer.echo(text)   # the fit is not lost: the profile goes to stdout
            raise os_error(err, "--out", out) from None
        load_target(out)  # the written profile must load; a ProfileError here is a bug worth seeing
        typer.echo(f"wrote {out} (extends {extends})")
        typer.echo("efficiency: " + ", ".join(f"{c}={v:.4f}" for c, v in fit_.efficiency.items())
                   + "".join(f"; memory {lv}={v:.4f}" for lv, v in fit_.memory_efficiency.items())
                   + f"; per_op_overhead={fit_.per_op_overhead_s * 1e6:.3g} us"
                   + f"; per_inference_overhead={fit_.per_inference_overhead_s * 1e6:.3g} us"
                   + (f"; per_output_overhead={fit_.per_output_overhead_s * 1e9:.3g} ns"
                      if "per_output" in fit_.params else "")
                   + ("; CPU kernel model on" if fit_.kernel_model else "")
                   + (f"; static power={fit_.static_W * 1e3:.4g} mW" if fit_.static_W is not None else ""))
        for label, err in fit_.train_rel_error.items():
            typer.echo(f"  {label}: training error {err:+.1%}")
        if fit_.at_bound:
            typer.echo("at a bound (efficiency 1 = profile peak): " + ", ".join(fit_.at_bound))
