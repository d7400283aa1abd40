"""Closed-form Jacobians of the book's cells (:func:`lib.models.update`), one point per row.

For P points s [P, S] of networks whose weights have been gathered per point (params [P, ...]),
:func:`jacobians` returns ``J = dF/ds`` [P, S, S] and ``D = dF/d drive`` [P, S, G], where the
drive ``x U + b`` [P, G] is how the input enters every cell; ``dF/dx = D U^T``. The cost is
a few [P, H, G] products per point, against a forward and backward pass over P x S copies of
the point for the generic autograd route (:func:`lib.fixed_point_solver.jacobians`).
Conventions of :mod:`lib.models`: ``z = h W + drive`` (W [H, G]), ``J[p, i, j] = dF_i / ds_j``.
"""
from __future__ import annotations

import torch

from . import models


def jacobians(spec: models.CellSpec, params: dict, s: torch.Tensor, x: torch.Tensor,
              inputs: bool = True):
    """``(dF/ds [P, S, S], dF/dx [P, S, I] or None)`` at points s [P, S] under inputs x [P, I]."""
    drive = models.input_drive(params, x[:, None].to(s.dtype))[:, 0]
    J, D = _ARCH[spec.arch](spec, params, s, drive, inputs)
    return J, (D @ params["U"].to(s.dtype).transpose(-1, -2) if inputs else None)


def _dphi(spec, z, y):
    """phi'(z) given z and y = phi(z) (ReLU: 0 at z = 0, as autograd)."""
    return 1 - y * y if spec.activation == "tanh" else (z > 0).to(z.dtype)


def _rows(v, Wt):
    """diag(v) @ Wt for v [P, H] and Wt [P, H, K]: each row of Wt scaled."""
    return v[:, :, None] * Wt


def _diags(*vs):
    """[diag(v_1), diag(v_2), ...] side by side: [P, H, k H] (dF/d drive when it is diagonal)."""
    return torch.cat([torch.diag_embed(v) for v in vs], -1)


def _vanilla(spec, p, s, drive, inputs):
    W = p["W"].to(s.dtype)
    z = torch.baddbmm(drive[:, None], s[:, None], W)[:, 0]
    d = _dphi(spec, z, models.PHI[spec.activation](z))
    return _rows(d, W.transpose(-1, -2)), (_diags(d) if inputs else None)


def _ugrnn(spec, p, s, drive, inputs):
    H, W = spec.n_hidden, p["W"].to(s.dtype)
    Wt = W.transpose(-1, -2)
    z = torch.baddbmm(drive[:, None], s[:, None], W)[:, 0]
    u, c = torch.sigmoid(z[:, :H]), models.PHI[spec.activation](z[:, H:])
    du, dc = (s - c) * u * (1 - u), (1 - u) * _dphi(spec, z[:, H:], c)
    J = torch.diag_embed(u) + _rows(du, Wt[:, :H]) + _rows(dc, Wt[:, H:])
    return J, (_diags(du, dc) if inputs else None)


def _gru(spec, p, h, drive, inputs):
    H, W = spec.n_hidden, p["W"].to(h.dtype)
    Wt = W.transpose(-1, -2)  # [P, G, H]: Wt[:, k] = weights into gate unit k
    zg = torch.baddbmm(drive[:, None, :2 * H], h[:, None], W[..., :2 * H])[:, 0]
    u, r = torch.sigmoid(zg[:, :H]), torch.sigmoid(zg[:, H:])
    Wc_t = Wt[:, 2 * H:]
    if spec.gru_reset_after:
        lin = torch.bmm(h[:, None], W[..., 2 * H:])[:, 0] + p["b_hn"].to(h.dtype)[:, 0]
        zc = drive[:, 2 * H:] + r * lin
    else:
        zc = drive[:, 2 * H:] + torch.bmm((r * h)[:, None], W[..., 2 * H:])[:, 0]
    c = models.PHI[spec.activation](zc)
    dc = (1 - u) * _dphi(spec, zc, c)  # dF_i / dzc_i
    du = (h - c) * u * (1 - u)
    J = torch.diag_embed(u) + _rows(du, Wt[:, :H])
    if spec.gru_reset_after:  # zc = drive + r * lin
        dr = dc * lin * r * (1 - r)
        J = J + _rows(dr, Wt[:, H:2 * H]) + _rows(dc * r, Wc_t)
        return J, (_diags(du, dr, dc) if inputs else None)
    Dr = _rows(dc, Wc_t) * (h * r * (1 - r))[:, None, :]  # dF_i / dzr_k, zc = drive + (r h) Wc
    J = J + Dr @ Wt[:, H:2 * H] + _rows(dc, Wc_t) * r[:, None, :]
    return J, (torch.cat([torch.diag_embed(du), Dr, torch.diag_embed(dc)], -1) if inputs else None)


def _lstm(spec, p, s, drive, inputs):
    H, W = spec.n_hidden, p["W"].to(s.dtype)
    Wt = W.transpose(-1, -2)
    h, c = s[:, :H], s[:, H:]
    z = torch.baddbmm(drive[:, None], h[:, None], W)[:, 0]
    i, f, o = (torch.sigmoid(z[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
    phi = models.PHI[spec.activation]
    g = phi(z[:, 2 * H:3 * H])
    pc = phi(f * c + i * g)
    dpc = _dphi(spec, f * c + i * g, pc)
    # c' = f c + i g: dc'/dz_(i, f, g) diagonal; h' = o phi(c'): dh'/dz_o diagonal
    vi, vf, vg = g * i * (1 - i), c * f * (1 - f), i * _dphi(spec, z[:, 2 * H:3 * H], g)
    vo, k = pc * o * (1 - o), o * dpc
    dc_dh = _rows(vi, Wt[:, :H]) + _rows(vf, Wt[:, H:2 * H]) + _rows(vg, Wt[:, 2 * H:3 * H])
    top = torch.cat([_rows(k, dc_dh) + _rows(vo, Wt[:, 3 * H:]), torch.diag_embed(k * f)], -1)
    J = torch.cat([top, torch.cat([dc_dh, torch.diag_embed(f)], -1)], -2)
    if not inputs:
        return J, None
    zero = torch.zeros_like(vo)
    Dc = _diags(vi, vf, vg, zero)
    return J, torch.cat([_rows(k, Dc) + _diags(zero, zero, zero, vo), Dc], -2)


_ARCH = {"vanilla": _vanilla, "ugrnn": _ugrnn, "gru": _gru, "lstm": _lstm}
