"""Untraced ZOQO step with per-step Python overhead removed (same integers as `ZOQOTrainer.step`).

Why: at MLP size (2,410 codes, batch 64) a step is ~60 tiny tensor ops, so per-call overhead, not
arithmetic, sets its speed. This path precomputes every per-group constant once, keeps the codes
and intermediates in the dtypes the next kernel needs (int16 for code arithmetic, float32 only as
the *exact* integer container of the GEMM, int64 for the requantization), writes into buffers
allocated once, and runs the small element-wise work in numpy, whose per-call cost is ~5x lower
than torch's at this size. The GEMMs stay in torch (single-threaded like the FP baseline).

Bit-exactness (checked against the general path in tests/test_zoqo.py):
  * PRNG: lowbias32 in uint32 arithmetic; uint32 multiplication wraps mod 2^32, which is exactly
    the `& 0xFFFFFFFF` of `zoqo_noise.hash32`.
  * inverse CDF: j = #{i: T[i] ≤ r} − k. Each group's 2^32 draw space is cut into 2^LUT_BITS
    buckets; when no bucket holds more than one threshold (checked at setup, else this path is not
    used), j = base[bucket] + (r > T[base]−1) exactly — two table lookups and one compare.
  * GEMM: float32 of integers is exact while K·max|h|·max|c| ≤ 2^24 (checked per layer at setup,
    the single-chunk case of `hwsim.fixedpoint.intops`); requantization is the same int64 formula.
The traced step (cost/memory accounting) is unchanged and still goes through the general path.
"""
from __future__ import annotations

import numpy as np
import torch

from hwsim.algorithms.zoqo_forward import LOGIT_MAX, LOGIT_MIN
from hwsim.algorithms.zoqo_loss import pair_ce
from hwsim.algorithms.zoqo_noise import stream_keys

LUT_BITS = 12                      # buckets per group's 2^32 draw space
_F32_EXACT = 1 << 24
_clip = np._core.umath.clip       # the clip ufunc itself (np.clip's Python wrapper costs more than the work)
_M1, _M2 = np.uint32(0x7FEB352D), np.uint32(0x846CA68B)


def bucket_tables(table: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(j at each bucket start, T[that index] − 1) per bucket, or None if a bucket holds ≥ 2 thresholds."""
    t = table.numpy()
    shift = 32 - LUT_BITS
    starts = np.arange(1 << LUT_BITS, dtype=np.int64) << shift
    c0 = np.searchsorted(t, starts, side="right")
    c1 = np.searchsorted(t, starts + (1 << shift) - 1, side="right")
    if int((c1 - c0).max()) > 1:
        return None
    return (c0 - k).astype(np.int16), (t[c0] - 1).astype(np.uint32)


class FastStep:
    """Precomputed state for the untraced step of one trainer (None from `build` if not eligible)."""

    @classmethod
    def build(cls, tr) -> "FastStep | None":
        cfg, net = tr.cfg, tr.net
        if not (net.stackable and cfg.clamp_perturbed and tr._wide == torch.int16):
            return None
        luts = []
        for st in tr.state.values():
            lut = bucket_tables(st.table, st.k)
            if lut is None:
                return None
            luts.append(lut)
        h_max = (1 << net.in_bits) - 1
        for lay in net.layers:
            k = lay.kshape[1]
            if k * h_max * net.groups[lay.w].qmax > _F32_EXACT:
                return None
            h_max = lay.out_max
        return cls(tr, luts)

    def __init__(self, tr, luts: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.tr = tr
        d = tr.flat.numel()
        shift = 32 - LUT_BITS
        self.shift = shift
        self.base = tr.base.numpy().astype(np.uint32)
        self.jtab = np.concatenate([j for j, _ in luts])
        self.ttab = np.concatenate([t for _, t in luts])
        self.goff = np.concatenate([np.full(tr.codes[n].numel(), gi << LUT_BITS, dtype=np.intp)
                                    for gi, n in enumerate(tr.state)])
        self.qmax = tr.qmax_vec.numpy().astype(np.int16)
        self.m = tr.m_vec.numpy().astype(np.int16)
        # buffers, allocated once
        self.r = np.empty(d, np.uint32)
        self.tmp = np.empty(d, np.uint32)
        self.idx = np.empty(d, np.intp)
        self.jb = np.empty(d, np.int16)
        self.th = np.empty(d, np.uint32)
        self.gt = np.empty(d, np.bool_)
        self.j = np.empty(d, np.int16)
        self.c16 = np.empty(d, np.int16)
        self.u = np.empty(d, np.int16)
        self.pm = np.empty((2, d), np.int16)
        self.pmf = np.empty((2, d), np.float32)
        pmf_t = torch.from_numpy(self.pmf)
        # per layer: transposed float32 weight view [2, K, O] and int16 bias view [2, O] (aliases of pm)
        self._bufs: dict[int, list[tuple[np.ndarray, ...]]] = {}
        self.layers = []
        for lay in tr.net.layers:
            sw = tr.slices[lay.w]
            o, k = lay.kshape[0], lay.kshape[1]
            w_t = pmf_t[:, sw].view(2, o, k).transpose(1, 2)
            b16 = self.pm[:, tr.slices[lay.b]] if lay.b else None
            m1, m2, m3, m0 = (np.int64(v) for v in lay.mult)   # int64 scalars: int16 × m stays int64
            const = m0 + np.int64(1 << (lay.shift - 1))
            lo, hi = (0, lay.out_max) if lay.relu else (LOGIT_MIN, LOGIT_MAX)
            self.layers.append((w_t, b16, m1, m2, m3, const, lay.shift, lo, hi, lay.relu))

    def noise(self, step: int) -> np.ndarray:
        """j (int16) for every code: lowbias32 draws, then the bucket inverse CDF."""
        k1, _ = stream_keys(self.tr.cfg.seed, step, 0)
        x, tmp = self.r, self.tmp
        np.bitwise_xor(self.base, np.uint32(k1), out=x)
        np.right_shift(x, 16, out=tmp)
        np.bitwise_xor(x, tmp, out=x)
        np.multiply(x, _M1, out=x)
        np.right_shift(x, 15, out=tmp)
        np.bitwise_xor(x, tmp, out=x)
        np.multiply(x, _M2, out=x)
        np.right_shift(x, 16, out=tmp)
        np.bitwise_xor(x, tmp, out=x)
        np.right_shift(x, self.shift, out=self.idx)
        np.add(self.idx, self.goff, out=self.idx)
        np.take(self.jtab, self.idx, out=self.jb)
        np.take(self.ttab, self.idx, out=self.th)
        np.greater(x, self.th, out=self.gt)
        np.add(self.jb, self.gt, out=self.j)
        return self.j

    def _buffers(self, n: int) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, ...]]]:
        """Input and per-layer work buffers for batch size n (allocated once per size)."""
        bufs = self._bufs.get(n)
        if bufs is None:
            per_layer = []
            for w_t, *_ in self.layers:
                o = w_t.shape[-1]
                per_layer.append((np.empty((2, n, o), np.int64), np.empty((2, 1, o), np.int64),
                                  np.empty((2, n, 1), np.int64), np.empty((2, n, o), np.float32),
                                  np.empty((2, n, 1), np.int64)))
            bufs = (np.empty((n, self.layers[0][0].shape[1]), np.float32), np.empty((n, 1), np.int64), per_layer)
            self._bufs[n] = bufs
        return bufs

    def forward(self, xq: torch.Tensor) -> torch.Tensor:
        """Stacked integer forward of θ+ and θ− (codes already in self.pm / self.pmf): int64 [2, N, C]."""
        xn = xq.numpy().reshape(xq.shape[0], -1)
        x32, rs, per_layer = self._buffers(xn.shape[0])
        np.copyto(x32, xn, casting="unsafe")
        np.add.reduce(xn, axis=1, dtype=np.int64, keepdims=True, out=rs)     # [N, 1], shared by both queries
        hf = torch.from_numpy(x32).expand(2, *x32.shape)                      # both queries share the batch
        for (w_t, b16, m1, m2, m3, const, shift, lo, hi, relu), (t, bvec, rsm, hnext, rsn) in zip(
                self.layers, per_layer):
            acc = torch.bmm(hf, w_t).numpy()   # exact integers in float32; bmm: ~3x less overhead than matmul
            np.copyto(t, acc, casting="unsafe")
            np.multiply(t, m1, out=t)
            if b16 is not None:
                np.multiply(b16[:, None, :], m3, out=bvec)
                np.add(bvec, const, out=bvec)
            else:
                bvec.fill(const)
            np.multiply(rs, m2, out=rsm)                                     # broadcasts [N,1] or [2,N,1]
            np.add(t, bvec, out=t)
            np.add(t, rsm, out=t)
            np.right_shift(t, shift, out=t)
            _clip(t, lo, hi, out=t)
            if not relu:
                return torch.from_numpy(t.copy())
            np.copyto(hnext, t, casting="unsafe")
            np.add.reduce(t, axis=-1, keepdims=True, out=rsn)
            rs = rsn
            hf = torch.from_numpy(hnext)
        raise AssertionError("unreachable: the last layer has no ReLU")

    def step(self, xq: torch.Tensor, y: torch.Tensor) -> dict:
        tr = self.tr
        cfg, t = tr.cfg, tr.step_index
        j = self.noise(t)
        c16 = self.c16
        np.copyto(c16, tr.flat.numpy(), casting="unsafe")
        pm = self.pm
        np.add(c16, j, out=pm[0])
        np.subtract(c16, j, out=pm[1])
        _clip(pm, 0, self.qmax, out=pm)
        np.copyto(self.pmf, pm, casting="unsafe")
        logits = self.forward(xq)
        if tr.lut is None:
            lp, lm = pair_ce(logits, y, tr.net.logit_scale)
        else:
            lp, lm = tr.lut.pair(logits, y)
        sigma = 1 if lp > lm else (0 if (cfg.tie == "zero" and lp == lm) else -1)
        if sigma != 0:
            u = self.u
            np.sign(j, out=u)
            np.multiply(u, self.m, out=u)
            if sigma > 0:
                np.subtract(c16, u, out=c16)
            else:
                np.add(c16, u, out=c16)
            _clip(c16, 0, self.qmax, out=c16)
            tr.flat = torch.from_numpy(c16.astype(tr.flat.numpy().dtype))
        tr.step_index += 1
        return {"sigma": sigma, "loss_plus": lp, "loss_minus": lm}
