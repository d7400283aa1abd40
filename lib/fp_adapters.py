"""Step maps for the fixed-point search: the book's cells, torch modules, any step function.

A step map is a callable ``F(s, x, net) -> s'`` with s [R, B, S], x [R, B, I] and net [R]
(long): the B points of row r evolve independently under the weights of network ``net[r]``.
It must accept float32 and float64 and be differentiable in s and x.

>>> gru = torch.nn.GRU(3, 16)                                    # doctest: +SKIP
>>> F = ModuleMap(gru)                                           # one network: net is all 0
>>> visited = F.states(trial_inputs)                             # [1, B*T, S]
>>> fps = fixed_points.find(F, visited, config, inputs=[0., 0., 0.])
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from . import cell_jacobians, models


class CellMap:
    """Step map of every network of a trained shard (params [N, ...], not modified).

    Rows whose ``net`` is the whole network axis in order use the stacked weights as they are
    (the start phase); rows of many points each (further rounds' starts) use their networks'
    weights gathered row by row, once for as long as the rows stay the same; rows of a few
    points (candidates of the polish) are grouped by network (:meth:`_per_network`).
    """

    GATHER_POINTS = 16  # rows of at least this many points use gathered weights: the copy of
    # a network's weights per row then costs at most 1/16 of the row's products

    def __init__(self, spec: models.CellSpec, params: dict):
        self.spec = spec
        self.params = {k: v.detach() for k, v in params.items()}
        self._cast = {}
        self._gathered = None  # (dtype, net [R], weights [R, ...]) of the last rows gathered

    def _weights(self, dtype) -> dict:
        if dtype not in self._cast:
            self._cast[dtype] = {k: v.to(dtype) for k, v in self.params.items()}
        return self._cast[dtype]

    def _row_weights(self, dtype, net) -> dict:
        """Weights [R, ...] of the network of every row (net [R]), gathered once and kept
        while the same rows come back (the start phase steps them many times)."""
        g = self._gathered
        if g is None or g[0] != dtype or not torch.equal(g[1], net):
            g = self._gathered = (dtype, net.clone(),
                                  {k: v[net] for k, v in self._weights(dtype).items()})
        return g[2]

    def _per_network(self, fn, dtype, net, *rows):
        """``fn(params, *rows)`` for rows [R, B, ...] of points that evolve apart, row r under
        the weights of network ``net[r]``.

        Rows of at least ``GATHER_POINTS`` points go in one batched call under their
        networks' weights gathered row by row (:meth:`_row_weights`). Rows of fewer points
        are grouped by network and a group's c rows become one row of c x B points under its
        network's weights [1, ...] (a view: for rows of one point, gathering [R, H, G] weights
        per row would cost as much as the step itself), so each network costs one matrix
        product, not c small ones. Outputs (a tensor or a tuple of tensors or None) come
        back in the order of the rows.
        """
        p = self._weights(dtype)
        n = p["W"].shape[0]
        if len(net) == n and torch.equal(net, torch.arange(n)):
            return fn(p, *rows)
        if len(net) == 0:
            return fn({k: v[:0] for k, v in p.items()}, *rows)
        if rows[0].shape[1] >= self.GATHER_POINTS:
            return fn(self._row_weights(dtype, net), *rows)
        parts = []
        for i, idx in _groups(net, n):
            group = [r[idx] for r in rows]
            out = fn({k: v[i:i + 1] for k, v in p.items()},
                     *(g.reshape(1, -1, g.shape[-1]) for g in group))
            back_shape = lambda o: o.reshape(*group[0].shape[:2], *o.shape[2:])  # noqa: E731
            parts.append(tuple(map(back_shape, out)) if isinstance(out, tuple)
                         else back_shape(out))
        ordered = isinstance(idx, slice)  # (all groups alike)
        if ordered and len(parts) == 1:
            return parts[0]
        if not ordered:
            back = torch.empty_like(net)
            back[torch.argsort(net, stable=True)] = torch.arange(len(net))
        cat = lambda z: torch.cat(z) if ordered else torch.cat(z)[back]  # noqa: E731
        join = lambda k: None if parts[0][k] is None else cat([o[k] for o in parts])  # noqa: E731
        if torch.is_tensor(parts[0]):
            return join(slice(None))
        return tuple(map(join, range(len(parts[0]))))

    def __call__(self, s, x, net):
        if x.shape[-1] == 0:  # searched without an input: the cell sees zeros
            x = s.new_zeros(*s.shape[:2], self.spec.n_in)
        step = lambda p, s, x: models.update(  # noqa: E731  (models.step, with the drive below)
            self.spec, p, s, cell_jacobians.input_drive(p, x).expand(s.shape[0], -1, -1))
        return self._per_network(step, s.dtype, net, s, x.to(s.dtype))

    def q_and_grad(self, s, x, net):
        """``q [R, B]`` and its closed-form gradient ``dq/ds [R, B, S]`` at s [R, B, S] under
        x [R, B, I] (what :func:`lib.fixed_point_solver.adam` would get from autograd)."""
        if x.shape[-1] == 0:
            x = s.new_zeros(*s.shape[:2], self.spec.n_in)
        fn = lambda p, s, x: cell_jacobians.q_and_grad(  # noqa: E731
            self.spec, p, s, cell_jacobians.input_drive(p, x).expand(s.shape[0], -1, -1))
        return self._per_network(fn, s.dtype, net, s, x.to(s.dtype))

    def jacobians(self, s, x, net, inputs: bool = True):
        """Closed form ``dF/ds [P, S, S]`` and ``dF/dx [P, S, I]`` (None unless ``inputs``) at
        s [P, S] under x [P, I] for networks net [P]: each network's rows at once, written
        straight into their rows of dF/ds where they lie side by side (no [P, S, S] copy)."""
        xin = s.new_zeros(len(s), self.spec.n_in) if x.shape[-1] == 0 else x.to(s.dtype)
        p = self._weights(s.dtype)
        n, (P, S) = p["W"].shape[0], s.shape
        J = s.new_empty(P, S, S)
        Jx = s.new_empty(P, S, self.spec.n_in) if inputs else None
        whole = P == n and torch.equal(net, torch.arange(n))  # one row per network, in order
        for i, idx in [(None, slice(0, P))] if whole else _groups(net, n):
            w = p if whole else {k: v[i:i + 1] for k, v in p.items()}
            ordered = isinstance(idx, slice)
            Ji, Jxi = cell_jacobians.jacobians(self.spec, w, s[idx], xin[idx], inputs,
                                               out=J[idx] if ordered else None)
            if not ordered:
                J[idx] = Ji
            if inputs:
                Jx[idx] = Jxi
        return J, (Jx[..., :x.shape[-1]] if inputs else None)


def _groups(net: torch.Tensor, n: int):
    """(network, rows) for every network of the n with rows in net [R], in network order:
    rows as a slice where net is sorted (the usual case: no gather, no scatter), else as an
    index tensor [c] into net."""
    ordered = bool((net[1:] >= net[:-1]).all())
    order = None if ordered else torch.argsort(net, stable=True)
    start = 0
    for i, c in enumerate(torch.bincount(net, minlength=n).tolist()):
        if c:
            yield i, slice(start, start + c) if ordered else order[start:start + c]
            start += c


def cell_map(spec: models.CellSpec, params: dict, x_star):
    """``s -> F(s, x*)`` for every network of a shard, s [N, B, S] -> [N, B, S].

    ``x_star`` : [N or 1, I] or [I] constant input (used to iterate orbits, lib.topology).
    """
    x = torch.as_tensor(np.asarray(x_star, dtype=np.float64))
    x = x.reshape(1, 1, -1) if x.dim() == 1 else x.reshape(x.shape[0], 1, -1)
    F = CellMap(spec, params)
    n = params["W"].shape[0]
    net = torch.arange(n)

    def step(s):
        return F(s, x.to(s.dtype).expand(n, s.shape[1], x.shape[-1]), net)

    return step


def visited_states(spec: models.CellSpec, params: dict, inputs) -> torch.Tensor:
    """States [N, B*T, S] visited by every network of a shard on the trials ``inputs`` [B, T, I]."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))[None]
    p = {k: v.detach() for k, v in params.items()}
    with torch.no_grad():
        states = models.unroll(spec, p, x)
    return states.reshape(states.shape[0], -1, states.shape[-1])


class ModuleMap:
    """Step map of a user's ``torch.nn.RNN``, ``torch.nn.GRU`` or ``torch.nn.LSTM`` (one network).

    The state of an L-layer module is its hidden states stacked layer by layer, [L H]; for the
    LSTM it is [h (L H), c (L H)]. The module is copied per dtype, never modified.
    Unidirectional modules without ``proj_size`` only.
    """

    def __init__(self, module: torch.nn.RNNBase):
        if not isinstance(module, (torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM)):
            raise TypeError(f"expected torch.nn.RNN, GRU or LSTM, got {type(module).__name__}")
        if module.bidirectional or getattr(module, "proj_size", 0):
            raise ValueError("bidirectional modules and proj_size have no one-step map")
        self.module = module
        self.lstm = isinstance(module, torch.nn.LSTM)
        self.L, self.H = module.num_layers, module.hidden_size
        self._cast = {}

    @property
    def state_dim(self) -> int:
        return self.L * self.H * (2 if self.lstm else 1)

    def _copy(self, dtype):
        if dtype not in self._cast:
            m = copy.deepcopy(self.module).to(dtype).eval()
            m.requires_grad_(False)
            self._cast[dtype] = m
        return self._cast[dtype]

    def _run(self, m, s, x):
        """One step of module m from s [P, S] under x [P, I] -> [P, S]."""
        P, LH = len(s), self.L * self.H
        h = s[:, :LH].reshape(P, self.L, self.H).transpose(0, 1).contiguous()
        inp = x[:, None] if m.batch_first else x[None]
        if self.lstm:
            c = s[:, LH:].reshape(P, self.L, self.H).transpose(0, 1).contiguous()
            _, (h1, c1) = m(inp, (h, c))
            return torch.cat([h1.transpose(0, 1).reshape(P, LH), c1.transpose(0, 1).reshape(P, LH)], -1)
        _, h1 = m(inp, h)
        return h1.transpose(0, 1).reshape(P, LH)

    def __call__(self, s, x, net):
        R, B, S = s.shape
        out = self._run(self._copy(s.dtype), s.reshape(R * B, S), x.to(s.dtype).reshape(R * B, -1))
        return out.reshape(R, B, S)

    def states(self, inputs, s0=None) -> torch.Tensor:
        """States [1, B*T, S] visited on input trials [B, T, I] from s0 [B, S] (default zeros)."""
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
        m = self._copy(torch.float32)
        s = torch.zeros(x.shape[0], self.state_dim) if s0 is None else torch.as_tensor(s0).float()
        out = []
        with torch.no_grad():
            for t in range(x.shape[1]):
                s = self._run(m, s, x[:, t])
                out.append(s)
        return torch.stack(out, 1).reshape(1, -1, self.state_dim)


class StepFunctionMap:
    """Step map of any batched one-network step function ``fn(state [P, S], input [P, I]) -> [P, S]``."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, s, x, net):
        R, B, S = s.shape
        return self.fn(s.reshape(R * B, S), x.to(s.dtype).reshape(R * B, -1)).reshape(R, B, S)
