"""Up-front checks of the files and folders a command reads and writes.

Why: a bad `--out` / `--inputs` / spec path must end in one clear message (exit 2) naming the
option, the path and the fix — before minutes of work are spent, never as an OSError traceback.
Only the standard library is imported here so `hwsim --help` stays fast.
"""
from __future__ import annotations

import os
from pathlib import Path

from hwsim.errors import HwsimError

YAML_SUFFIXES = (".yaml", ".yml")


def input_file(path: Path | str, option: str) -> Path:
    """`path` must be an existing regular file (not a folder)."""
    p = Path(path)
    if p.is_dir():
        raise HwsimError(f"{option} {p}: is a directory, expected a file")
    if not p.is_file():
        raise HwsimError(f"{option} {p}: file not found")
    return p


def _nearest_existing(p: Path) -> Path:
    cur = p.absolute()
    while not cur.exists() and cur != cur.parent:
        cur = cur.parent
    return cur


def _check_creatable(p: Path, option: str, what: str) -> None:
    """The missing path `p` can be created: its nearest existing ancestor is a writable folder."""
    anc = _nearest_existing(p.parent if p.parent != Path("") else Path("."))
    if not anc.is_dir():
        raise HwsimError(f"{option} {p}: cannot create the {what}, because {anc} is a file, not a folder; "
                         f"choose another {option}")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise HwsimError(f"{option} {p}: cannot create the {what}: {anc} is not writable; "
                         f"choose another {option}")


def output_dir(path: Path | str, option: str = "--out") -> Path:
    """`path` is an existing folder or one that can be created (checked, not created)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise HwsimError(f"{option} {p}: exists and is a file, expected a folder; "
                         f"remove it or choose another {option}")
    if not p.exists():
        _check_creatable(p, option, "folder")
    elif not os.access(p, os.W_OK | os.X_OK):
        raise HwsimError(f"{option} {p}: folder is not writable; choose another {option}")
    return p


def output_file(path: Path | str, option: str = "--out", example: str = "out") -> Path:
    """`path` is a file that can be (over)written: not a folder, its parent creatable."""
    p = Path(path)
    if p.is_dir():
        raise HwsimError(f"{option} {p}: is a directory, expected a file name; "
                         f"give a file path such as {p / example}")
    if not p.exists():
        _check_creatable(p, option, "file")
    elif not os.access(p, os.W_OK):
        raise HwsimError(f"{option} {p}: file is not writable; choose another {option}")
    return p


def os_error(err: OSError, option: str, path: Path | str) -> HwsimError:
    """An OSError met while writing `path` as one user-facing message."""
    reason = err.strerror or type(err).__name__
    return HwsimError(f"{option} {path}: cannot write there ({reason}: {err.filename or path}); "
                      f"choose another {option}")


def check_target_arg(target: str | None, option: str = "--target") -> None:
    """A `--target` naming an existing non-YAML file or a folder gets a precise message."""
    if not target:
        return
    p = Path(target)
    if p.is_dir():
        from hwsim.target.loader import find_profile

        if find_profile(target) is not None:     # a profile name that happens to match a folder
            return
        raise HwsimError(f"{option} {target}: is a directory, expected a device profile name or a "
                         f"YAML file (see `hwsim targets list`)")
    if p.is_file() and p.suffix.lower() not in YAML_SUFFIXES:
        raise HwsimError(f"{option} {target}: is a file but not a YAML device profile (.yaml/.yml); "
                         f"pass a profile name (see `hwsim targets list`) or a .yaml path")
