"""MAC work of a TFLite op as the CPU kernel library executes it, from the op's shapes.

Why: a profile's peak MAC rate (SMLAD: two 16-bit MACs per cycle on a Cortex-M) is reached by
no kernel, and kernels miss it by different amounts that follow from their loops, not from the
model: CMSIS-NN's im2col convolution loads two weights and two input pairs per four MACs of a
2 x 2 output block, a fully-connected layer (matrix x vector) reuses no weight, a 3x3
depthwise convolution multiplies one 16-bit pair per instruction, reduction elements that do
not fill a SIMD step run a scalar loop, and im2col copies and widens every input element it
gathers. Counting those instructions per op (the counts are profile data, `compute.<unit>.kernels`,
with their source) gives the op's work in *MAC equivalents* of the convolution GEMM loop, which
is what the profile's peak rate and the fitted `runtime_efficiency.compute` then price. One fitted
efficiency can then serve fully-connected, convolution and depthwise layers alike.

Only ops with a TFLite builtin name (`attrs["tflite_op"]`, set by the TFLite emulator; TFLite
weight layouts: conv OHWI, depthwise 1HW(C*M), fully-connected (out, in)) are counted; any other
op keeps its MAC count (factor 1).
"""
from __future__ import annotations

from hwsim.trace import OpEvent

_CONV, _DEPTHWISE, _FC = "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"


def _weight_shape(ev: OpEvent) -> tuple[int, ...] | None:
    for t in ev.reads:
        if t.kind == "weight":
            return tuple(int(d) for d in t.shape)
    return None


def _reduction(k: int, per_mac: float, kernels) -> float:
    """Instructions for one output's dot product of length k: SIMD steps, then the scalar leftover."""
    step = kernels.simd_k
    return (k // step) * step * per_mac + (k % step) * kernels.scalar_mac


def instructions(ev: OpEvent, kernels) -> float | None:
    """Kernel-library instructions for the MAC work of `ev` (None: not a kernel the table covers)."""
    op = str(ev.attrs.get("tflite_op", ""))
    w = _weight_shape(ev)
    if op not in (_CONV, _DEPTHWISE, _FC) or w is None or not ev.writes or ev.macs <= 0:
        return None
    if op == _FC:
        k = w[-1]
        return ev.macs / k * _reduction(k, kernels.fc_mac, kernels)
    if len(w) != 4:
        return None
    _, kh, kw, cin = w
    if op == _DEPTHWISE:
        per_mac = kernels.depthwise_3x3_mac if (kh, kw) == (3, 3) else kernels.depthwise_mac
        return ev.macs * per_mac
    k = kh * kw * cin
    dots = ev.macs / k                      # output pixels x output channels
    if (kh, kw) == (1, 1):
        return dots * _reduction(k, kernels.pointwise_mac, kernels)
    out = ev.writes[0].shape
    pixels = ev.writes[0].numel // int(out[-1])
    im2col = pixels * (k * kernels.im2col_element + kh * kw * kernels.im2col_tap)
    return dots * _reduction(k, kernels.conv_mac, kernels) + im2col


def _is_im2col_conv(ev: OpEvent) -> bool:
    """A CONV_2D that CMSIS-NN's arm_convolve_wrapper_s8 sends to arm_convolve_s8 (im2col + GEMM).

    1x1 kernels go to the 1x1 kernels instead (no im2col; stride-1 ones read each weight once).
    """
    if ev.attrs.get("tflite_op") != _CONV or not ev.writes:
        return False
    w = _weight_shape(ev)
    return w is not None and len(w) == 4 and (w[1], w[2]) != (1, 1)


def weight_passes(ev: OpEvent, kernels) -> int:
    """How many times the kernel reads the op's whole filter from where it is stored (1 = once).

    Why: arm_convolve_s8 computes `conv_pixels_per_weight_pass` output pixels per walk over all
    output channels' filter rows, so an im2col convolution's weight traffic is its filter size
    times ceil(pixels / that); on a flash-resident filter every walk pays the wait states again.
    """
    per_pass = kernels.conv_pixels_per_weight_pass
    if not per_pass or not _is_im2col_conv(ev):
        return 1
    out = ev.writes[0]
    pixels = out.numel // int(out.shape[-1])
    return max(1, -(-pixels // per_pass))


def mac_factor(ev: OpEvent, kernels) -> float:
    """MAC equivalents per MAC of `ev`: its kernel instructions over the GEMM loop's instructions per MAC."""
    n = instructions(ev, kernels)
    if n is None:
        return 1.0
    return n / (kernels.conv_mac * ev.macs)


def output_elements(ev: OpEvent) -> int:
    """Output elements an op with MACs requantises and stores (0 for ops without MACs)."""
    if ev.macs <= 0:
        return 0
    return sum(t.numel for t in ev.writes)
