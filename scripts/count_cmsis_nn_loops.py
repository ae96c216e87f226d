"""Count the instructions per MAC of CMSIS-NN's MAC loops as a compiler emits them for a Cortex-M4.

Run: python scripts/count_cmsis_nn_loops.py SRC_ROOT [--compiler gcc|clang] [--opt=-O2|-Os]
(developer tool, not in CI)

SRC_ROOT is a CMSIS-NN source tree: an ARM-software/CMSIS-NN checkout (Include/, Source/) or a
CMSIS_5 checkout (CMSIS/NN/..., CMSIS/Core/Include). `--compiler gcc` (default) needs
arm-none-eabi-gcc on PATH (Debian/Ubuntu: `apt install gcc-arm-none-eabi`); `--compiler clang`
needs `pip install ziglang`. Prints, for each kernel-table entry of `compute.cpu.kernels`, the
kernel's main MAC loop, its instruction mix and instructions per MAC; these numbers go into
`hwsim/runtimes/cmsis_nn.yaml` (one entry per CMSIS-NN version and build) with this command as
their source. Use the optimisation level of the build being described (e.g. Zephyr's
CONFIG_SPEED_OPTIMIZATIONS: -O2; Mbed CLI's default develop profile: -Os).

Why compiled counts: hand counts of the C loops (loads, unpacking, MACs, +2 for the branch) miss
what the compiler adds: address arithmetic, register spills in loops with four accumulators and
the moves between them. Those differ between kernels (im2col GEMM vs matrix x vector), which is
what the kernel model is about; a uniform factor would be absorbed by the fitted efficiency.

How a loop is found: the assembly is split into basic blocks; a branch to an earlier block is a
back edge and the blocks from its target to its source form a loop; an innermost loop contains no
other back edge. MACs per block: SMLAD/SMLADX = 2, SMLABB/SMLABT/SMLATB/SMLATT/MLA/SMLAL = 1.
Instructions per MAC = instructions of the loop's blocks / its MACs, with every block counted
once per iteration (conditional taps at image borders included, as for interior pixels).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

#: table entry -> (source file under the NN Source folder, what the loop computes)
KERNELS = {
    "conv_mac": ("ConvolutionFunctions/arm_nn_mat_mult_kernel_s8_s16.c", "im2col GEMM, 2 channels x 2 pixels"),
    "pointwise_mac": ("NNSupportFunctions/arm_nn_mat_mult_nt_t_s8.c", "1x1 convolution GEMM"),
    "fc_mac": ("NNSupportFunctions/arm_nn_vec_mat_mult_t_s8.c", "fully connected, matrix x vector"),
    "depthwise_3x3_mac": ("ConvolutionFunctions/arm_depthwise_conv_3x3_s8.c", "3x3 depthwise"),
    "depthwise_mac": ("ConvolutionFunctions/arm_depthwise_conv_s8_opt.c", "general depthwise (MAC loop only)"),
}
MAC_WEIGHT = {"smlad": 2, "smladx": 2, "smlabb": 1, "smlabt": 1, "smlatb": 1, "smlatt": 1, "mla": 1, "smlal": 1}
BRANCH = re.compile(r"^(b|beq|bne|bge|bgt|ble|blt|bhi|bhs|blo|bls|bmi|bpl|bcc|bcs|cbz|cbnz)(\.w|\.n)?$")


def nn_dirs(root: Path) -> tuple[Path, list[Path]]:
    """The Source folder and the include folders of a CMSIS-NN or CMSIS_5 tree."""
    if (root / "CMSIS" / "NN").is_dir():
        nn = root / "CMSIS" / "NN"
        incs = [nn / "Include", root / "CMSIS" / "Core" / "Include", root / "CMSIS" / "DSP" / "Include"]
    else:
        nn = root
        incs = [root / "Include"]
    return nn / "Source", [p for p in incs if p.is_dir()]


def compile_to_asm(src: Path, incs: list[Path], cpu: str, work: Path, compiler: str = "gcc",
                   opt: str = "-O2") -> str:
    """Assembly of `src` for a bare-metal Cortex-M with DSP: clang (via ziglang) or arm-none-eabi-gcc."""
    stub = work / "stub"
    stub.mkdir(exist_ok=True)
    # no libc: CMSIS-DSP's arm_math.h (included by 2020-era CMSIS-NN) only needs these declared
    (stub / "math.h").write_text("#pragma once\n" + "".join(
        f"{t} {f}({t});\n" for t, f in (("float", "sqrtf"), ("double", "sqrt"), ("float", "fabsf"),
                                         ("float", "expf"), ("float", "logf"), ("float", "cosf"),
                                         ("float", "sinf"), ("double", "exp"), ("double", "log"))))
    if "-fno-builtin" in opt.split():
        # a hosted build with -fno-builtin (Mbed's GCC_ARM profiles): memcpy/memset are library calls
        (stub / "string.h").write_text("#pragma once\n#include <stddef.h>\nvoid *memcpy(void *, const void *, size_t);\n"
                                       "void *memset(void *, int, size_t);\n")
    else:
        # freestanding: keep memcpy/memset builtins so 4-byte reads become single loads, as with GCC -O2
        (stub / "string.h").write_text("#pragma once\n#include <stddef.h>\n#define memcpy __builtin_memcpy\n"
                                       "#define memset __builtin_memset\n")
    out = work / (src.stem + ".s")
    if compiler == "gcc":
        cmd = ["arm-none-eabi-gcc", "-mthumb", f"-mcpu={cpu.replace('_', '-')}", "-mfloat-abi=hard",
               "-mfpu=fpv4-sp-d16", "-ffreestanding"]
    else:
        cmd = [sys.executable, "-m", "ziglang", "cc", "-target", "thumb-freestanding-eabihf", f"-mcpu={cpu}"]
    cmd += [*opt.split(), "-g0", "-S", "-I", str(stub), *[f"-I{p}" for p in incs], "-DARM_MATH_DSP", str(src), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.read_text()


def blocks(asm: str) -> list[tuple[str, list[str]]]:
    """Basic blocks in layout order: (label, instructions). Consecutive labels with nothing between
    them (GCC emits several for one address) name one block: "first|second|...".
    """
    out: list[tuple[str, list[str]]] = []
    bare = False      # the last label has had neither an instruction nor a directive (data) after it
    for line in asm.splitlines():
        m = re.match(r"^(\.?L\w+|[A-Za-z_]\w*):", line)
        if m:
            if out and bare and out[-1][0].startswith(".") and m.group(1).startswith("."):
                out[-1] = (out[-1][0] + "|" + m.group(1), [])
            else:
                out.append((m.group(1), []))
            bare = True
            continue
        t = line.split("@")[0].strip()
        if not t or not out:
            continue
        bare = False
        if t.startswith("."):
            continue
        if out[-1][1] and BRANCH.match(out[-1][1][-1].split()[0]):
            # the instruction after a branch starts a new block (compilers do not always label it)
            out.append((f".after{len(out)}", []))
        out[-1][1].append(t)
    return out


def _successors(bbs: list[tuple[str, list[str]]]) -> list[set[int]]:
    index = {label: i for i, (name, _) in enumerate(bbs) for label in name.split("|")}
    succ: list[set[int]] = []
    for i, (_, ins) in enumerate(bbs):
        s: set[int] = set()
        ends = False
        for inst in ins:
            parts = inst.split()
            op = parts[0] if parts else ""
            if BRANCH.match(op) and len(parts) > 1:
                j = index.get(parts[-1].split(",")[-1].strip())
                if j is not None:
                    s.add(j)
                ends = op in ("b", "b.w", "b.n")
            elif op in ("bx", "pop", "pop.w") and ("lr" in inst or "pc" in inst):
                ends = True
        if not ends and ins and i + 1 < len(bbs):   # a block without instructions holds data: no fall-through
            s.add(i + 1)
        succ.append(s)
    return succ


def innermost_loops(bbs: list[tuple[str, list[str]]]) -> list[list[int]]:
    """Natural loops (back edge u -> h with h dominating u) that contain no other loop's header."""
    succ = _successors(bbs)
    n = len(bbs)
    pred: list[set[int]] = [set() for _ in range(n)]
    for u, ss in enumerate(succ):
        for v in ss:
            pred[v].add(u)
    # dominators, iteratively; entries = function symbols. Other blocks without predecessors hold
    # data (literal pools, jump tables) or are unreachable: they keep "everything" and constrain nothing.
    everything = set(range(n))
    dom = [everything.copy() for _ in range(n)]
    for i in range(n):
        if not pred[i] and not bbs[i][0].startswith("."):
            dom[i] = {i}
    changed = True
    while changed:
        changed = False
        for i in range(n):
            if not pred[i]:
                continue
            new = set.intersection(*(dom[p] for p in pred[i])) | {i}
            if new != dom[i]:
                dom[i], changed = new, True
    loops: dict[int, set[int]] = {}
    for u in range(n):
        for h in succ[u]:
            if h in dom[u]:                       # back edge u -> h
                body, stack = {h, u}, ([u] if u != h else [])   # the walk stops at the header
                while stack:
                    x = stack.pop()
                    for p in pred[x]:
                        if p not in body:
                            body.add(p)
                            stack.append(p)
                loops.setdefault(h, set()).update(body)
    headers = set(loops)
    return [sorted(b) for h, b in sorted(loops.items()) if not (headers - {h}) & b]


def macs(ins: list[str]) -> int:
    return sum(MAC_WEIGHT.get(i.split()[0].split(".")[0], 0) for i in ins)


def calls(ins: list[str]) -> dict[str, int]:
    """Function calls in `ins` by callee (`bl memcpy` -> {"memcpy": 1})."""
    out: dict[str, int] = {}
    for i in ins:
        parts = i.split()
        if parts and parts[0] in ("bl", "blx") and len(parts) > 1:
            out[parts[1]] = out.get(parts[1], 0) + 1
    return out


def hottest_loop(asm: str) -> tuple[int, int, dict[str, int]]:
    """(instructions, MACs, mix) of the main MAC loop: the innermost loop with the most MACs per
    iteration; among equals, the one with the fewest instructions per MAC (the SIMD main path, not
    a scalar left-over loop of the same unrolled size)."""
    bbs = blocks(asm)
    best = (0, 0, {})
    for loop in innermost_loops(bbs):
        ins = [i for k in loop for i in bbs[k][1]]
        m = macs(ins)
        if m > best[1] or (m == best[1] and m and len(ins) < best[0]):
            mix: dict[str, int] = {}
            for i in ins:
                op = i.split()[0].split(".")[0]
                mix[op] = mix.get(op, 0) + 1
            for f, k in calls(ins).items():
                mix[f"bl:{f}"] = k
            best = (len(ins), m, dict(sorted(mix.items())))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="CMSIS-NN or CMSIS_5 source tree")
    ap.add_argument("--cpu", default="cortex_m4", help="-mcpu (default cortex_m4)")
    ap.add_argument("--compiler", choices=("gcc", "clang"), default="gcc",
                    help="clang: pip install ziglang; gcc: arm-none-eabi-gcc on PATH (Debian: apt install gcc-arm-none-eabi)")
    ap.add_argument("--opt", default="-O2",
                    help="optimisation flags, space-separated (default -O2; Mbed's develop profile: '-Os -fno-builtin')")
    ap.add_argument("--call-cost", action="append", default=[], metavar="FUNC=N",
                    help="instructions one call of FUNC executes (e.g. memcpy=18, newlib's ARMv7-M memcpy for 4 "
                         "aligned bytes); added per call in the loop")
    args = ap.parse_args(argv)
    src_dir, incs = nn_dirs(args.root)
    print(f"# {args.root}: {args.compiler} {args.opt} -mcpu={args.cpu}")
    with tempfile.TemporaryDirectory() as tmp:
        for entry, (rel, what) in KERNELS.items():
            asm = compile_to_asm(src_dir / rel, incs, args.cpu, Path(tmp), args.compiler, args.opt)
            n, m, mix = hottest_loop(asm)
            cost = dict(kv.split("=") for kv in args.call_cost)
            called = {f: mix.get(f"bl:{f}", 0) for f in cost}
            extra = sum(int(cost[f]) * k for f, k in called.items())
            print(f"{entry:18s} {(n + extra) / m:6.4g} instructions/MAC  ({n} instructions + {extra} in calls, "
                  f"{m} MACs per iteration; {rel}: {what}) {mix}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
