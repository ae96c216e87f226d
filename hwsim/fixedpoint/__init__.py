"""Fixed-point numerics: formats, rounding, requantization, exact integer kernels."""
