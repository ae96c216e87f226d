"""Training and attack algorithms that run in the emulator (ZOQO, its baselines, BMPQ, attacks)."""
