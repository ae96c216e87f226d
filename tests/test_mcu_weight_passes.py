"""CPU kernel model: filter re-reads of CMSIS-NN's im2col convolution, and kernel tables by library version.

Oracles: a brute-force walk of arm_convolve_s8's loop order written here (two im2col columns, then
one walk over every output channel's filter row; an odd last pixel walks the filter once more),
counted byte by byte; the shapes of the MLPerf Tiny models; the CMSIS SHA the OctoML submission
publishes in the shared calibration CSV.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hwsim.cost import mcu_kernels
from hwsim.cost.analytic import cost_trace
from hwsim.cost.calibrate import profile_yaml, with_kernel_table
from hwsim.errors import HwsimError
from hwsim.runtimes import cmsis_nn_version, load_runtime
from hwsim.target import load_target
from hwsim.trace import OpEvent, TensorInfo

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "mlperf_tiny"
SHARED_CSV = Path("/work/shared/calibration/mlperf_tiny_calibration.csv")


def _conv(out_hw: tuple[int, int], cout: int, kh: int, kw: int, cin: int, in_hw: tuple[int, int]) -> OpEvent:
    h, w = out_hw
    return OpEvent(
        op="conv2d", name="c", phase="forward", attrs={"tflite_op": "CONV_2D"},
        reads=(TensorInfo("x", (1, *in_hw, cin), 8, "activation"), TensorInfo("w", (cout, kh, kw, cin), 8, "weight"),
               TensorInfo("b", (cout,), 32, "bias")),
        writes=(TensorInfo("y", (1, h, w, cout), 8, "activation"),),
        work={("mac", "int8"): h * w * cout * kh * kw * cin})


def _walk_arm_convolve_s8(out_h: int, out_w: int, cout: int, k: int) -> int:
    """Filter bytes arm_convolve_s8 (DSP path) reads: a walk of all rows per 2 im2col columns."""
    read = 0
    columns = 0
    for _ in range(out_h):
        for _ in range(out_w):
            columns += 1
            if columns == 2:                         # arm_nn_mat_mult_kernel_s8_s16 over all output_ch
                for _row in range(cout):
                    read += k
                columns = 0
    if columns:                                      # left-over column: the scalar loop over all output_ch
        for _row in range(cout):
            read += k
    return read


@pytest.mark.parametrize("out_hw,cout,kh,kw,cin,in_hw", [
    ((32, 32), 16, 3, 3, 16, (32, 32)),   # IC 3x3, even pixel count
    ((25, 5), 64, 10, 4, 1, (49, 10)),    # KWS first conv, 125 pixels (odd)
    ((7, 3), 8, 3, 3, 3, (15, 7)),        # stride 2, odd
    ((1, 1), 4, 3, 3, 2, (3, 3)),         # a single pixel
])
def test_im2col_conv_reads_the_filter_once_per_two_output_pixels(out_hw, cout, kh, kw, cin, in_hw):
    k = load_target("stm32l4r5").compute["cpu"].kernels
    ev = _conv(out_hw, cout, kh, kw, cin, in_hw)
    filter_bytes = cout * kh * kw * cin
    assert mcu_kernels.weight_passes(ev, k) * filter_bytes == _walk_arm_convolve_s8(*out_hw, cout, kh * kw * cin)


def test_1x1_and_fully_connected_read_each_weight_once():
    k = load_target("stm32l4r5").compute["cpu"].kernels
    assert mcu_kernels.weight_passes(_conv((16, 16), 32, 1, 1, 16, (16, 16)), k) == 1
    assert mcu_kernels.weight_passes(_conv((16, 16), 32, 1, 1, 16, (32, 32)), k) == 1   # strided 1x1
    fc = OpEvent(op="fully_connected", name="fc", phase="forward", attrs={"tflite_op": "FULLY_CONNECTED"},
                 reads=(TensorInfo("x", (1, 64), 8, "activation"), TensorInfo("w", (10, 64), 8, "weight")),
                 writes=(TensorInfo("y", (1, 10), 8, "activation"),), work={("mac", "int8"): 640})
    assert mcu_kernels.weight_passes(fc, k) == 1
    no_table = k.model_copy(update={"conv_pixels_per_weight_pass": None})
    assert mcu_kernels.weight_passes(_conv((32, 32), 16, 3, 3, 16, (32, 32)), no_table) == 1


def test_flash_reads_and_stalls_follow_the_passes_only_with_the_kernel_model():
    """IC on stm32l4r5: op 1 (3x3, 32x32 output) reads its 2,304-byte filter 512 times from flash."""
    from hwsim.emulator import Emulator

    base = load_target("stm32l4r5")
    on = base.model_copy(deep=True)
    on.runtime_efficiency = on.runtime_efficiency.model_copy(update={"kernel_model": True})
    trace = Emulator.from_tflite(DATA / "pretrainedResnet_quant.tflite").trace_only()
    rows_on = cost_trace(trace, on).ops
    rows_off = cost_trace(trace, base).ops
    bias = 16 * 4
    assert rows_on.iloc[1]["read_bytes_flash"] == 512 * 2304 + bias
    assert rows_off.iloc[1]["read_bytes_flash"] == 2304 + bias
    assert rows_on.iloc[6]["read_bytes_flash"] == rows_off.iloc[6]["read_bytes_flash"]      # 1x1: once
    assert rows_on.iloc[14]["read_bytes_flash"] == rows_off.iloc[14]["read_bytes_flash"]    # FC: once
    # flash wait states stall the core: the extra 511 filter walks are paid at the flash read rate
    flash = base.memories["flash"]
    extra_stall = 511 * 2304 / flash.read_bw_Bps / on.runtime_efficiency.memory_factor("flash")
    assert rows_on.iloc[1]["stall_s"] == pytest.approx(rows_off.iloc[1]["stall_s"] + extra_stall, rel=1e-12)


def _version_of(row: dict) -> str | None:
    found = cmsis_nn_version(f"{row['software_stack']} | {row['software_raw']}")
    return None if found is None else found[0]


def test_stacks_that_publish_their_cmsis_version_get_its_table_and_no_other_stack_does():
    """From the shared CSV: microTVM + CMSIS-NN names CMSIS_5@51263182; the v0.5 reference names TFLM v2.3.1
    (+ CMSIS-NN, CMSIS_5@1150e71e); Renesas' TFLM + CMSIS-NN (unversioned), PengCheng's TFLM 2.3.1 on
    RISC-V (no CMSIS-NN), X-CUBE-AI and Plumerai match nothing."""
    with SHARED_CSV.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_stack: dict[str, set] = {}
    for r in rows:
        by_stack.setdefault(r["software_stack"], set()).add(_version_of(r))
    assert by_stack["microTVM + CMSIS-NN"] == {"cmsis_5@51263182"}
    tflm = {(r["round"], r["submitter"]): _version_of(r) for r in rows if r["software_stack"] == "TFLM + CMSIS-NN"}
    assert tflm[("v0.5", "reference")] == "cmsis_5@1150e71e"
    assert all(v is None for k, v in tflm.items() if k != ("v0.5", "reference")), tflm
    for stack in ("TFLM", "X-CUBE-AI 7.1.0", "X-CUBE-AI 7.3.0", "Plumerai Inference Engine", "microTVM (native schedules)"):
        assert by_stack.get(stack, {None}) == {None}, stack


def test_version_table_overrides_only_the_counts_it_names():
    base = load_target("stm32l4r5")
    counts = load_runtime("cmsis_nn")["versions"]["cmsis_5@51263182"]["kernels"]
    t = with_kernel_table(base, counts)
    k0, k1 = base.compute["cpu"].kernels, t.compute["cpu"].kernels
    for name in type(k0).model_fields:
        assert getattr(k1, name) == counts.get(name, getattr(k0, name)), name
    assert base.compute["cpu"].kernels.conv_mac == k0.conv_mac          # the original is not touched
    with pytest.raises(HwsimError, match="unknown counts"):
        with_kernel_table(base, {"conv_macs": 1.0})


@pytest.mark.parametrize("stem,version", [("stm32l4r5-microtvm-cmsis-nn-v1.0", "cmsis_5@51263182"),
                                          ("nrf5340-microtvm-cmsis-nn-v1.0", "cmsis_5@51263182"),
                                          ("stm32l4r5-tflm-cmsis-nn-v0.5", "cmsis_5@1150e71e")])
def test_shipped_profiles_carry_their_library_version(stem, version):
    cal = load_target(REPO / "targets" / "calibrated" / f"{stem}.yaml")
    counts = load_runtime("cmsis_nn")["versions"][version]["kernels"]
    k = cal.compute["cpu"].kernels
    assert {n: getattr(k, n) for n in counts} == counts
    other = load_target(REPO / "targets" / "calibrated" / "stm32l4r5-x-cube-ai-7.3.0-v1.0.yaml")
    assert other.compute["cpu"].kernels == load_target("stm32l4r5").compute["cpu"].kernels


def test_profile_yaml_writes_a_loadable_kernel_override(tmp_path):
    from hwsim.cost.calibrate import Fit

    fit_ = Fit(params=("mac",), efficiency={"mac": 0.2}, per_op_overhead_s=0.0, per_inference_overhead_s=0.0,
               static_W=None, train_rel_error={"x": 0.0}, kernel_model=True)
    text = profile_yaml("stm32l4r5", "l4r5-old-cmsis", fit_, "test", {},
                        kernels={"source": "test table", "conv_mac": 1.5})
    p = tmp_path / "l4r5-old-cmsis.yaml"
    p.write_text(text, encoding="utf-8")
    t = load_target(p)
    assert t.compute["cpu"].kernels.conv_mac == 1.5
    assert t.compute["cpu"].kernels.fc_mac == load_target("stm32l4r5").compute["cpu"].kernels.fc_mac


# ---- scripts/count_cmsis_nn_loops.py: finding a kernel's main MAC loop in compiler output ----------

_ASM = """
kernel:
	push	{r4, r5, lr}
	movs	r3, #0
.LBB0_1:
	ldr	r4, [r0], #4
	cmp	r3, r2
	bge	.LBB0_5
.LBB0_2:
	ldr	r5, [r1], #4
	sxtb16	r4, r4
	smlad	r6, r4, r5, r6
	smlad	r7, r4, r5, r7
	subs	r2, #1
	bne	.LBB0_2
.LBB0_3:
	ldrsb	r5, [r1], #1
	mla	r6, r4, r5, r6
	subs	r3, #1
	bne	.LBB0_3
.LBB0_4:
	adds	r3, #1
	b	.LBB0_1
.LBB0_5:
	pop	{r4, r5, pc}
"""


def _counter():
    import importlib.util

    spec = importlib.util.spec_from_file_location("count_cmsis_nn_loops", REPO / "scripts" / "count_cmsis_nn_loops.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_loop_finder_returns_the_innermost_loops_and_picks_the_one_with_most_macs():
    """A hand-written function: an outer loop (.LBB0_1..4) around a SIMD loop (.LBB0_2: 2 SMLAD = 4
    MACs in 6 instructions) and a scalar loop (.LBB0_3: 1 MLA in 4 instructions)."""
    c = _counter()
    bbs = c.blocks(_ASM)
    names = [[bbs[k][0] for k in loop] for loop in c.innermost_loops(bbs)]
    assert names == [[".LBB0_2"], [".LBB0_3"]]
    n, m, mix = c.hottest_loop(_ASM)
    assert (n, m) == (6, 4) and mix["smlad"] == 2



def test_every_kernel_table_in_cmsis_nn_yaml_is_a_valid_override_and_variants_resolve():
    from hwsim.runtimes import cmsis_nn_variant

    base = load_target("stm32l4r5")
    versions = load_runtime("cmsis_nn")["versions"]
    for name, v in versions.items():
        assert v["source"] and isinstance(v["match"], list), name
        t = with_kernel_table(base, v["kernels"])          # raises on an unknown count name
        assert all(getattr(t.compute["cpu"].kernels, k) == x for k, x in v["kernels"].items()), name
        if "variant_of" in v:
            assert v["variant_of"] in versions and not v["match"], name
    assert cmsis_nn_variant("cmsis_5@51263182", "clang")[0] == "cmsis_5@51263182/clang-O2"
    assert cmsis_nn_variant("cmsis_5@51263182", "build")[0] == "cmsis_5@51263182"
    assert cmsis_nn_variant("cmsis_5@51263182", "icc")[0] == "cmsis_5@51263182"   # no such variant: itself


_GCC_ASM = """
kernel:
	push	{r4, lr}
	b	.L3
.L5:
	.word	1234
.L9:
.L4:
	ldr	r4, [r0], #4
	smlad	r6, r4, r5, r6
	subs	r2, #1
	b	.L3
.L3:
	cmp	r2, #0
	bne	.L4
	pop	{r4, pc}
"""


def test_loop_finder_merges_consecutive_labels_and_ignores_data_blocks():
    """GCC puts several labels on one address (.L9/.L4) and literal data behind unreachable labels;
    the loop .L3 -> .L4 -> .L3 must still be found (2 MACs in 6 instructions), and the exit code after
    the loop's conditional branch (pop) is a block of its own, outside the loop."""
    c = _counter()
    bbs = c.blocks(_GCC_ASM)
    assert [b[0] for b in bbs] == ["kernel", ".L5", ".L9|.L4", ".L3", ".after4"]
    loops = [[bbs[k][0] for k in loop] for loop in c.innermost_loops(bbs)]
    assert loops == [[".L9|.L4", ".L3"]]
    n, m, _ = c.hottest_loop(_GCC_ASM)
    assert (n, m) == (6, 2)
