"""hwsim: run quantized workloads bit-accurately and price every operation from a device profile."""
from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

#: Repository root when installed in editable/development mode (targets/, workloads/ live here).
REPO_ROOT = Path(__file__).resolve().parent.parent
