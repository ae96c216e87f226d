"""Text tables for the ZOQO comparison (the digits analogue of ZOQO Table IV)."""
from __future__ import annotations


def accuracy_table(metrics: dict) -> str:
    """Markdown: rows = optimizer, columns = FP / Post-Q / Q post updates / Q noise & Q post (b8 / b4)."""
    v = metrics.get("variants", {})
    acc_key = f"{metrics.get('eval_split', 'test')}_accuracy"
    bits = sorted({m["bits"] for m in v.values() if m.get("bits")}, reverse=True)

    def cell(prefix: str) -> str:
        vals = [v.get(f"{prefix}@b{b}", {}).get(acc_key) for b in bits]
        return " / ".join("—" if a is None else f"{100 * a:.2f}" for a in vals)

    head = f"| method | FP | Post-Q. | Q. post updates | Q. noise & Q. post updates |   (b = {' / '.join(map(str, bits))})"
    lines = [head, "|---|---|---|---|---|"]
    for opt, label in (("sign", "ZO-Sign"), ("adam", "ZO-Adam")):
        if not any(k.startswith(opt + "/") for k in v):
            continue
        fp = v.get(f"{opt}/fp", {}).get(acc_key)
        lines.append(f"| {label} | {'—' if fp is None else f'{100 * fp:.2f}'} | {cell(opt + '/post-q')} | "
                     f"{cell(opt + '/q-post')} | {cell(opt + '/q-noise')} |")
    if any(k.startswith("zoqo@") for k in v):
        lines.append(f"\nZOQO (b = {' / '.join(map(str, bits))}): {cell('zoqo')}")
    pre = metrics.get("pretrained_fp_accuracy")
    if pre is not None:
        lines.append(f"\nstart: float-pretrained model {100 * pre:.2f} % "
                     f"({metrics.get('steps')} ZO steps, batch {metrics.get('batch')}, test n={metrics.get('test_size')})")
    return "\n".join(lines)
