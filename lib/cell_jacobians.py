"""Closed-form derivatives of the book's cells (:func:`lib.models.update`).

For P points s [P, S] with weights per point (params [P, ...]) or one network's weights for
all of them (params [1, ...], used as one matrix), :func:`jacobians` returns ``J = dF/ds``
[P, S, S] and ``D = dF/d drive`` [P, S, G], where the drive ``x U + b`` [P, G] is how the
input enters every cell; ``dF/dx = D U^T``. The cost is a few [P, H, G] products per point,
against a forward and backward pass over P x S copies of the point for the generic autograd
route (:func:`lib.fixed_point_solver.jacobians`). :func:`q_and_grad` gives the start phase's
``q = 1/2 |F(s) - s|^2`` and its gradient from one forward pass and a closed-form
vector-Jacobian product. Conventions of :mod:`lib.models`: ``z = h W + drive`` (W [H, G]),
``J[p, i, j] = dF_i / ds_j``.
"""
from __future__ import annotations

import torch

from . import fp_kernels, models


def jacobians(spec: models.CellSpec, params: dict, s: torch.Tensor, x: torch.Tensor,
              inputs: bool = True, out: torch.Tensor | None = None):
    """``(dF/ds [P, S, S], dF/dx [P, S, I] or None)`` at points s [P, S] under inputs x [P, I];
    dF/ds is written into ``out`` [P, S, S] (contiguous) when given."""
    J, D = _ARCH[spec.arch](spec, params, s, input_drive(params, x[:, None].to(s.dtype))[:, 0],
                            inputs, out)
    return J, (D @ params["U"].to(s.dtype).transpose(-1, -2) if inputs else None)


def input_drive(params: dict, x: torch.Tensor) -> torch.Tensor:
    """:func:`lib.models.input_drive` (``x U + b``: x [N or 1, ..., B, I] -> [N, ..., B, G]);
    where every input is zero (a search without input) the bias itself, expanded, with no
    product (the same numbers: 0 U + b = b)."""
    if x.shape[-1] and x.any():
        return models.input_drive(params, x)
    U, b = params["U"], params["b"]
    lead = (U.shape[0],) + (1,) * (x.dim() - 3)
    return b.reshape(*lead, *b.shape[1:]).expand(
        *torch.broadcast_shapes(x.shape[:-2], lead), x.shape[-2], b.shape[-1])


def _dphi(spec, z, y):
    """phi'(z) given z and y = phi(z) (ReLU: 0 at z = 0, as autograd)."""
    return 1 - y * y if spec.activation == "tanh" else (z > 0).to(z.dtype)


def _lin(s, W, add=None):
    """s [P, H] @ W [P or 1, H, K] (+ add [P, K]) -> [P, K]. Weights [1, ...] (one network for
    all rows) are used as one matrix, never expanded per row."""
    if W.shape[0] == 1:
        return s @ W[0] if add is None else torch.addmm(add, s, W[0])
    out = torch.bmm(s[:, None], W)[:, 0]
    return out if add is None else out + add


def _mm(M, W):
    """M [P, H, K] @ W [P or 1, K, L] -> [P, H, L] (one matrix product for shared weights)."""
    return M @ W[0] if W.shape[0] == 1 else torch.bmm(M, W)


def _t(W):
    """W [P or 1, H, G] -> W^T [P or 1, G, H]; copied into row-major order for one network's
    weights (a [G, H] copy), so the [P, H, K] products built from it come out row-major too
    (from the transposed view they come out column-major, and every later pass over them,
    the normal equations' included, pays a transposing copy)."""
    Wt = W.transpose(-1, -2)
    return Wt.contiguous() if W.shape[0] == 1 else Wt


def _rows(v, Wt, out=None):
    """diag(v) @ Wt for v [P, H] and Wt [P or 1, H, K]: each row of Wt scaled (into out)."""
    return torch.mul(v[:, :, None], Wt, out=out)


def _add_diag(J, v):
    """J [P, H, H] + diag(v) for v [P, H], in place; returns J."""
    torch.diagonal(J, dim1=-2, dim2=-1).add_(v)
    return J


def _diags(*vs):
    """[diag(v_1), diag(v_2), ...] side by side: [P, H, k H] (dF/d drive when it is diagonal)."""
    P, H = vs[0].shape
    out = vs[0].new_zeros(P, H, len(vs) * H)
    for k, v in enumerate(vs):
        torch.diagonal(out[..., k * H:(k + 1) * H], dim1=-2, dim2=-1).copy_(v)
    return out


def _vanilla(spec, p, s, drive, inputs, out=None):
    W = p["W"].to(s.dtype)
    z = _lin(s, W, drive)
    d = _dphi(spec, z, models.PHI[spec.activation](z))
    return _rows(d, _t(W), out), (_diags(d) if inputs else None)


def _ugrnn(spec, p, s, drive, inputs, out=None):
    H, W = spec.n_hidden, p["W"].to(s.dtype)
    Wt = _t(W)
    z = _lin(s, W, drive)
    u, c = torch.sigmoid(z[:, :H]), models.PHI[spec.activation](z[:, H:])
    du, dc = (s - c) * u * (1 - u), (1 - u) * _dphi(spec, z[:, H:], c)
    J = _add_diag(torch.add(_rows(du, Wt[:, :H]), _rows(dc, Wt[:, H:]), out=out), u)
    return J, (_diags(du, dc) if inputs else None)


def _gru(spec, p, h, drive, inputs, out=None):
    H, W = spec.n_hidden, p["W"].to(h.dtype)
    Wt = _t(W)  # [P, G, H]: Wt[:, k] = weights into gate unit k
    zg = _lin(h, W[..., :2 * H], drive[:, :2 * H])
    u, r = torch.sigmoid(zg[:, :H]), torch.sigmoid(zg[:, H:])
    Wc_t = Wt[:, 2 * H:]
    if spec.gru_reset_after:
        lin = _lin(h, W[..., 2 * H:], p["b_hn"].to(h.dtype)[:, 0].expand(len(h), H))
        zc = drive[:, 2 * H:] + r * lin
    else:
        zc = _lin(r * h, W[..., 2 * H:], drive[:, 2 * H:])
    c = models.PHI[spec.activation](zc)
    dc = (1 - u) * _dphi(spec, zc, c)  # dF_i / dzc_i
    du = (h - c) * u * (1 - u)
    if spec.gru_reset_after:  # zc = drive + r * lin
        dr = dc * lin * r * (1 - r)
        J = torch.add(_rows(du, Wt[:, :H]) + _rows(dr, Wt[:, H:2 * H]), _rows(dc * r, Wc_t),
                      out=out)
        return _add_diag(J, u), (_diags(du, dr, dc) if inputs else None)
    # dF_i / dzr_k (zc = drive + (r h) Wc) and its product from the transposed view, as
    # always: BLAS sums in an order that depends on the layout of its operands
    Wv = W.transpose(-1, -2)
    Dr = _rows(dc, Wv[:, 2 * H:]) * (h * r * (1 - r))[:, None, :]
    J = torch.add(_mm(Dr, Wv[:, H:2 * H]) + _rows(du, Wt[:, :H]), _rows(dc, Wc_t) * r[:, None, :],
                  out=out)
    if not inputs:
        return _add_diag(J, u), None
    D = _diags(du, du, dc)
    D[..., H:2 * H] = Dr
    return _add_diag(J, u), D


def _lstm(spec, p, s, drive, inputs, out=None):
    H, W = spec.n_hidden, p["W"].to(s.dtype)
    h, c = s[:, :H], s[:, H:]
    z = _lin(h, W, drive)
    i, f, o = (torch.sigmoid(z[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
    phi = models.PHI[spec.activation]
    g = phi(z[:, 2 * H:3 * H])
    pc = phi(f * c + i * g)
    dpc = _dphi(spec, f * c + i * g, pc)
    # c' = f c + i g: dc'/dz_(i, f, g) diagonal; h' = o phi(c'): dh'/dz_o diagonal
    vi, vf, vg = g * i * (1 - i), c * f * (1 - f), i * _dphi(spec, z[:, 2 * H:3 * H], g)
    vo, k = pc * o * (1 - o), o * dpc
    if W.shape[0] == 1 and fp_kernels.usable(W, s):  # one network: the same sums, in one C pass
        J = fp_kernels.lstm_jacobian(W[0], torch.stack([vi, vf, vg, vo, k, f], 1), out)
    else:
        Wt = _t(W)
        # [[dh'/dh, dh'/dc], [dc'/dh, dc'/dc]]
        J = s.new_zeros(len(s), 2 * H, 2 * H) if out is None else out.zero_()
        dc_dh = J[:, H:, :H]
        torch.add(_rows(vi, Wt[:, :H]), _rows(vf, Wt[:, H:2 * H]), out=dc_dh)
        dc_dh.add_(_rows(vg, Wt[:, 2 * H:3 * H]))
        torch.add(_rows(k, dc_dh), _rows(vo, Wt[:, 3 * H:]), out=J[:, :H, :H])
        torch.diagonal(J[:, :H, H:], dim1=-2, dim2=-1).copy_(k * f)
        torch.diagonal(J[:, H:, H:], dim1=-2, dim2=-1).copy_(f)
    if not inputs:
        return J, None
    zero = torch.zeros_like(vo)
    Dc = _diags(vi, vf, vg, zero)
    D = torch.cat([_rows(k, Dc), Dc], -2)
    torch.diagonal(D[:, :H, 3 * H:], dim1=-2, dim2=-1).add_(vo)
    return J, D


_ARCH = {"vanilla": _vanilla, "ugrnn": _ugrnn, "gru": _gru, "lstm": _lstm}


# ---------------------------------------------------------------------------------------------
# q = 1/2 |F(s) - s|^2 and its gradient (J - I)^T (F(s) - s): the start phase's Adam


def q_and_grad(spec: models.CellSpec, params: dict, s: torch.Tensor, drive: torch.Tensor):
    """``(q [N, B], dq/ds [N, B, S])`` at states s [N, B, S] under the input drive
    [N, B, G] (weights [N, ...]): one forward pass and one closed-form vector-Jacobian
    product ``J^T rho`` with the residual ``rho = F(s) - s``, no autograd graph."""
    F, Jt_rho = _VJP[spec.arch](spec, params, s, drive)
    return 0.5 * (F - s).pow(2).sum(-1), Jt_rho - (F - s)


def _vjp_vanilla(spec, p, s, drive):
    W = p["W"]
    z = torch.baddbmm(drive, s, W)
    F = models.PHI[spec.activation](z)
    return F, torch.bmm(_dphi(spec, z, F) * (F - s), W.transpose(-1, -2))


def _vjp_ugrnn(spec, p, s, drive):
    H, W = spec.n_hidden, p["W"]
    z = torch.baddbmm(drive, s, W)
    u, c = torch.sigmoid(z[..., :H]), models.PHI[spec.activation](z[..., H:])
    F = c + u * (s - c)
    rho = F - s
    dz = torch.cat([(s - c) * u * (1 - u) * rho, (1 - u) * _dphi(spec, z[..., H:], c) * rho], -1)
    return F, u * rho + torch.bmm(dz, W.transpose(-1, -2))


def _vjp_gru(spec, p, h, drive):
    H, W = spec.n_hidden, p["W"]
    Wt = W.transpose(-1, -2)
    gates = torch.sigmoid(torch.baddbmm(drive[..., :2 * H], h, W[..., :2 * H]))
    u, r = gates[..., :H], gates[..., H:]
    if spec.gru_reset_after:
        lin = torch.bmm(h, W[..., 2 * H:]) + p["b_hn"]
        zc = drive[..., 2 * H:] + r * lin
    else:
        zc = torch.baddbmm(drive[..., 2 * H:], r * h, W[..., 2 * H:])
    c = models.PHI[spec.activation](zc)
    F = u * h + (1 - u) * c
    rho = F - h
    a_c = (1 - u) * _dphi(spec, zc, c) * rho  # d(F . rho) / dzc
    a_u = (h - c) * u * (1 - u) * rho
    if spec.gru_reset_after:  # zc = drive + r * (h Wc + b_hn)
        dz = torch.cat([a_u, a_c * lin * r * (1 - r), a_c * r], -1)
        return F, u * rho + torch.bmm(dz, Wt)
    e = torch.bmm(a_c, Wt[..., 2 * H:, :])  # d / d(r h)
    dz = torch.cat([a_u, e * h * r * (1 - r)], -1)
    return F, u * rho + e * r + torch.bmm(dz, Wt[..., :2 * H, :])


def _vjp_lstm(spec, p, s, drive):
    H, W = spec.n_hidden, p["W"]
    h, c = s[..., :H], s[..., H:]
    z = torch.baddbmm(drive, h, W)
    i, f, o = (torch.sigmoid(z[..., k * H:(k + 1) * H]) for k in (0, 1, 3))
    phi = models.PHI[spec.activation]
    g = phi(z[..., 2 * H:3 * H])
    c1 = f * c + i * g
    pc = phi(c1)
    F = torch.cat([o * pc, c1], -1)
    rho = F - s
    rh, rc = rho[..., :H], rho[..., H:]
    gam = rh * o * _dphi(spec, c1, pc) + rc  # d(F . rho) / dc'
    dz = torch.cat([gam * g * i * (1 - i), gam * c * f * (1 - f),
                    gam * i * _dphi(spec, z[..., 2 * H:3 * H], g), rh * pc * o * (1 - o)], -1)
    return F, torch.cat([torch.bmm(dz, W.transpose(-1, -2)), gam * f], -1)


_VJP = {"vanilla": _vjp_vanilla, "ugrnn": _vjp_ugrnn, "gru": _vjp_gru, "lstm": _vjp_lstm}
