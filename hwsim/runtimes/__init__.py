"""Runtime data files (struct sizes, alignment rules, kernel-library versions), loaded from YAML.

Why: sizes of a runtime's bookkeeping structs are properties of a build (pointer width, compile
flags), and the loops a kernel library runs are properties of its version, not of hwsim; they
live in `hwsim/runtimes/<runtime>.yaml` with a `source:` per number.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from hwsim.errors import HwsimError

_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def load_runtime(name: str) -> dict[str, Any]:
    """The parsed data file `hwsim/runtimes/<name>.yaml`."""
    path = _DIR / f"{name}.yaml"
    if not path.is_file():
        raise HwsimError(f"no runtime data file {path}; known: {sorted(p.stem for p in _DIR.glob('*.yaml'))}")
    with path.open() as f:
        return yaml.safe_load(f)


def tflm_build(build: str) -> dict[str, Any]:
    """One build section (e.g. 'host64', 'mcu32') of `tflm.yaml`."""
    builds = load_runtime("tflm")["builds"]
    if build not in builds:
        raise HwsimError(f"hwsim/runtimes/tflm.yaml: unknown build {build!r}; choose from {sorted(builds)}")
    return builds[build]


def cmsis_nn_version(stack_description: str) -> tuple[str, dict[str, Any]] | None:
    """The CMSIS-NN version (name, section of `cmsis_nn.yaml`) a stack description names, or None.

    `stack_description`: what the stack publishes, e.g. "<software stack> | <software versions>" from
    an MLPerf Tiny row. Matching is on identifiers (a commit SHA, a release string), never on
    measured behaviour.
    """
    for name, version in load_runtime("cmsis_nn")["versions"].items():
        if any(m in stack_description for m in version["match"]):
            return name, version
    return None


def cmsis_nn_variant(name: str, compiler: str) -> tuple[str, dict[str, Any]]:
    """The `<name>/<compiler>-O2` entry of `cmsis_nn.yaml` (e.g. the clang-compiled counts), or `name`
    itself (the build's own compiler and flags) when `compiler` is "build" or no such entry exists."""
    versions = load_runtime("cmsis_nn")["versions"]
    variant = f"{name}/{compiler}-O2"
    if compiler != "build" and variant in versions:
        return variant, versions[variant]
    return name, versions[name]


def cmsis_nn_profile_kernels(name: str, version: dict[str, Any]) -> dict[str, Any]:
    """The `compute.<cpu>.kernels` block a profile carries for entry `name` of `cmsis_nn.yaml`:
    its counts and a `source` naming the entry and its provenance."""
    return {"source": f"{name} (hwsim/runtimes/cmsis_nn.yaml): {' '.join(version['source'].split())}",
            **version["kernels"]}
