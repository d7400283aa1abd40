"""Fixed-point analyses of trained populations, one function per task.

Networks are processed shard by shard (networks of a shard share a cell, so their fixed points
are found in one batched search, :mod:`lib.fixed_points`). A :class:`lib.population.Group` holds the included
networks of one shard.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from dataclasses import replace

from . import fixed_points as fp
from . import fp_cache, integration, models
from .geometry import PCA
from .population import Group, groups  # noqa: F401  (groups is part of this module's API)


def search_configs(n_init: int = 256, tol_fixed: float = 1e-12, tol_slow: float = 1e-8,
                   cdi_tol_slow: float = 1e-5, adam_iters: int | None = None) -> dict:
    """The book's fixed-point searches, the same in every chapter: ``{task: FixedPointConfig}``.

    Flip-flop: the search's defaults (trajectory starts with noise at half the visited spread,
    a quarter at the whole spread, adaptive Adam, float64 polish, two rounds of midpoint and
    slow-mode neighbour starts). Sine wave: the same with 16 starts per (network, command) from the
    trajectory and 16 from its centre, since one point per command is expected and there are
    many commands. Integration: slow points along the line attractors. The polish stops as soon
    as a candidate is a slow point (``polish_to``; polished to float64 precision it would slide
    along the line to one of the line's few exact fixed points, and without a polish Adam alone
    leaves every start of some ReLU LSTMs above the threshold), and a candidate it carries more
    than half a visited radius from where Adam left it is dropped (``polish_radius``; it would
    fetch slow points far from the trajectories, where gated networks' gates saturate and
    F(s) ~ s holds widely). No further rounds between slow points of one line, merging only of
    points closer than ``tol_unique`` so that the line stays densely covered, and at most 128
    starts (they cover a line; ``n_init`` is the flip-flop's).
    """
    base = fp.FixedPointConfig(n_init=n_init, tol_fixed=tol_fixed, tol_slow=tol_slow)
    if adam_iters is not None:
        base = replace(base, adam_iters=adam_iters)
    cdi_cfg = replace(base, n_init=min(n_init, 128), polish_to=cdi_tol_slow / 10,
                      polish_radius=0.5, midpoint_rounds=0, tol_adam=cdi_tol_slow / 10,
                      tol_slow=cdi_tol_slow, tol_merge=base.tol_unique,
                      adam_iters=max(base.adam_iters, 1000))
    return {"flipflop": base, "sine": replace(base, n_init=min(n_init, 16)), "cdi": cdi_cfg}


def readout_points(spec: models.CellSpec, params: dict, fps: fp.FixedPoints) -> np.ndarray:
    """Output [M, O] that each point's network reads out of it."""
    h = torch.as_tensor(fps.points[:, :spec.n_hidden])
    net = torch.as_tensor(fps.net)
    W, b = params["W_out"].double()[net], params["b_out"].double()[net, 0]
    return (torch.einsum("mh,mho->mo", h, W) + b).numpy()


def pca(states: np.ndarray, k: int = 3):
    """Mean [S] and top-k principal axes [S, k] of states [V, S]."""
    fit = PCA(k).fit(states)
    return fit.mean_, fit.components_.T


# ------------------------------------------------------------------------------ flip-flop


def flipflop(group: Group, task, config: fp.FixedPointConfig, n_trials: int = 16):
    """Fixed points under zero input and the output code each holds (searched once per
    networks, task and configuration: :mod:`lib.fp_cache`).

    Returns
    -------
    fps : FixedPoints of the group; visited : [n, V, S] float32; codes : [M, O] readout.
    """
    job = flipflop_search(group, task, config, n_trials)
    fps = job.result()  # chapters 5 and 6 search the same networks
    return fps, job.visited.numpy(), readout_points(group.spec, group.params, fps)


def flipflop_search(group: Group, task, config: fp.FixedPointConfig,
                    n_trials: int = 16) -> fp_cache.Search:
    """The search behind :func:`flipflop`: zero input, starts from the probe trials' states."""
    probe = task.probe(n_trials).inputs
    return fp_cache.Search.of(fp_cache.search_key(group.spec, group.params, probe, config),
                              group.spec, group.params, np.zeros(task.n_in),
                              flipflop_visited(group, task, n_trials), config)


def flipflop_visited(group: Group, task, n_trials: int = 16) -> torch.Tensor:
    """[n, V, S] states the group's networks visit on the shared probe trials (the starts and
    scales of :func:`flipflop`'s search)."""
    return fp.visited_states(group.spec, group.params, task.probe(n_trials).inputs)


def code_retention(group: Group, task, n_hold: int = 500, n_trials: int = 64) -> np.ndarray:
    """[n] fraction of probe trials whose output code survives ``n_hold`` steps of zero input.

    Starts from each trial's final state; a network that stores the bits in stable fixed points
    keeps them, one that relies on slow transients loses them.
    """
    trials = task.probe(n_trials)
    with torch.no_grad():
        s = models.unroll(group.spec, group.params, torch.as_tensor(trials.inputs)[None])[:, :, -1]
        x = torch.zeros(1, n_trials, n_hold, task.n_in)
        late = models.unroll(group.spec, group.params, x, s)[:, :, -1]
        y0, y1 = (models.readout(group.spec, group.params, z) for z in (s, late))
    return (torch.sign(y0) == torch.sign(y1)).all(-1).double().mean(1).numpy()


def flipflop_table(group: Group, fps: fp.FixedPoints, codes: np.ndarray):
    """One row per network: isolated points by number of unstable modes, stable codes held,
    canonical, and the points on a continuum apart.

    Only *isolated* fixed points (:func:`lib.fp_result.isolated`: no Jacobian eigenvalue within
    1e-3 of 1) are counted as points: a continuum (a line or plane of numerically fixed points)
    is sampled at as many places as the search's starts happen to reach, so its count follows
    the search budget, not the network; ``n_continuum`` counts those samples. A stable point
    *holds* code c in {-1, +1}^O when its readout is within 0.5 of c in every output. The
    network is *canonical* when it has exactly 2^O isolated stable fixed points holding all
    2^O codes. ``n_slow`` counts kept points that are slow points (q above the search's
    ``tol_fixed``), not fixed points.
    """
    rows = []
    n_out = codes.shape[1]
    iso_all = fp.isolated(fps)
    for k, net in enumerate(group.nets):
        m = fps.net == k
        fixed = m & ~fps.slow
        iso = fixed & iso_all
        stable = iso & (fps.n_unstable == 0)
        held = np.abs(codes[stable] - np.sign(codes[stable])).max(1, initial=0) < 0.5
        n_codes = len({tuple(c) for c in np.sign(codes[stable][held])})
        rows.append(dict(arch=group.spec.arch, activation=group.spec.activation,
                         label=group.label, n_fixed=int(fixed.sum()), n_slow=int((m & ~fixed).sum()),
                         n_continuum=int((fixed & ~iso).sum()),
                         **{f"unstable_{u}": int((iso & (fps.n_unstable == u)).sum()) for u in range(4)},
                         n_stable=int(stable.sum()), n_codes=n_codes,
                         canonical=bool(stable.sum() == 2 ** n_out and n_codes == 2 ** n_out)))
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ sine wave


def sine(group: Group, task, config: fp.FixedPointConfig, freqs=None,
         n_cycle_steps: int | None = None):
    """The input-dependent fixed point per command frequency and its rotation frequency.

    The (network, frequency) pairs are searched together: the network axis is repeated once
    per frequency, each copy with its own static input. ``freqs``: frequency indices
    (default: all).

    Returns
    -------
    df : DataFrame, one row per network x frequency: commanded ``omega``, ``omega_pred`` (angle of
    the dominant complex eigenvalue pair), ``radius`` (its modulus), ``q``, ``winding`` (turns of
    the trajectory around the point in the plane of its top two PCs, after a transient),
    ``cycles`` (the output's oscillation cycles over the same steps), ``amplitude`` (the
    output's standard deviation), ``growth`` (that of the second half of the steps over that of
    the first) and ``limit_cycle``: a sustained oscillation (amplitude above 0.1, growth
    within a factor 1.5 either way) that winds around the point at least once and at least
    once per two of its cycles (a trajectory around the point turns once per cycle; one that
    passes a point on its own band on either side gathers a turn or two over many cycles).
    fps : FixedPoints over the (network, frequency) pairs, pair k = net * J + frequency.
    best : [n*J] index into fps of each pair's point (-1: none found).
    after : [n*J, n_cycle_steps, S] the steps after the probe trial that the limit-cycle test
    measures.
    """
    freqs = np.arange(task.n_freqs) if freqs is None else np.asarray(freqs)
    n, J, T, S = len(group.nets), len(freqs), task.n_time, group.spec.state_dim
    job = sine_search(group, task, config, freqs)
    fps, rep, x, vis = job.result(), job.params, job.x_star, job.visited
    best = _central_points(fps, vis.numpy(), n * J)
    centres = at_points(fps.points, best)
    wind, n_cycles, amplitude, growth, after = _winding(group.spec, rep, x, vis[:, -1], centres,
                                                        n_cycle_steps or 2 * T)
    rows = []
    for k in range(n * J):
        m = best[k]
        lam = fps.eigvals[m] if m >= 0 else np.full(S, np.nan + 0j)
        cplx = lam[np.abs(lam.imag) > 1e-6]
        top = cplx[np.argmax(np.abs(cplx))] if len(cplx) else np.nan + 0j
        rows.append(dict(arch=group.spec.arch, activation=group.spec.activation, label=group.label,
                         net=k // J, freq=freqs[k % J], omega=task.omegas[freqs[k % J]],
                         omega_pred=float(np.abs(np.angle(top))), radius=float(np.abs(top)),
                         q=fps.q[m] if m >= 0 else np.nan, winding=wind[k],
                         cycles=n_cycles[k], amplitude=amplitude[k], growth=growth[k]))
    df = pd.DataFrame(rows)
    df["limit_cycle"] = ((df.winding >= 1) & (df.winding >= df.cycles / 2)
                         & (df.amplitude > 0.1) & df.growth.between(1 / 1.5, 1.5))
    return df, fps, best, after


def sine_search(group: Group, task, config: fp.FixedPointConfig,
                freqs=None) -> fp_cache.Search:
    """The search behind :func:`sine`: the (network, frequency) pairs as one network axis
    (weights repeated per frequency, each copy with its static input); its ``visited`` are
    the pairs' probe trajectories [n*J, T, S]."""
    freqs = np.arange(task.n_freqs) if freqs is None else np.asarray(freqs)
    n, J = len(group.nets), len(freqs)
    trials = task.trials_for(freqs)
    visited = fp.visited_states(group.spec, group.params, trials.inputs)  # [n, J*T, S]
    S, T = visited.shape[-1], task.n_time
    vis = visited.reshape(n, J, T, S).reshape(n * J, T, S)
    rep = {k: v.repeat_interleave(J, 0) for k, v in group.params.items()}
    x = np.tile(task.levels[freqs, None], (n, 1))  # [n*J, 1]
    # The point sits inside the limit cycle: start near each trajectory's centroid, and from
    # visited states for the slow, short trials whose centroid is off-centre.
    ref = vis.double()
    init = torch.cat([fp.initial_states(ref[:, T // 2:].mean(1, keepdim=True), config),
                      fp.initial_states(ref, config)], dim=1)
    key = fp_cache.search_key(group.spec, group.params, trials.inputs, config, inputs=x,
                              sources=("dynamics.py",))  # the starts are set up here
    return fp_cache.Search.of(key, group.spec, rep, x, vis, config, init=init)


def at_points(values: np.ndarray, best: np.ndarray) -> np.ndarray:
    """``values`` [M, ...] of each pair's point, NaN where ``best`` [P] is -1: [P, ...].

    Works when the search found no point at all (M = 0).
    """
    out = np.full((len(best),) + values.shape[1:], np.nan, dtype=values.dtype)
    out[best >= 0] = values[best[best >= 0]]
    return out


def _central_points(fps, vis, n_pairs):
    """Index [n_pairs] of each pair's point inside its limit cycle (-1 if none found).

    The centre of a limit cycle is an unstable spiral, so points with an unstable complex pair
    come first; among them, the one nearest the centroid of the trajectory's second half
    (after the transient from the zero state).
    """
    centre = vis[:, vis.shape[1] // 2:].mean(1)
    spiral = ((np.abs(fps.eigvals) > 1) & (np.abs(fps.eigvals.imag) > 1e-6)).any(1)
    out = np.full(n_pairs, -1)
    for k in range(n_pairs):  # one argmin per pair; the search itself is batched
        m = np.flatnonzero(fps.net == k)
        if len(m):
            d = np.linalg.norm(fps.points[m] - centre[k], axis=1) + 1e6 * ~spiral[m]
            out[k] = m[np.argmin(d)]
    return out


def _winding(spec, params, x, s0, centres, n_steps):
    """Turns of each trajectory around its point, and its output's cycles and standard deviation.

    Runs ``n_steps`` more steps from s0 [P, S] under the static inputs x [P, I] and measures
    them with :func:`turns` (around ``centres`` [P, S]; NaN rows: no point) and
    :func:`cycles`. Returns winding [P], cycles [P], amplitude [P], growth [P] and the states
    [P, n_steps, S]: amplitude is the output's standard deviation over all steps, growth that
    of the second half of them over that of the first.
    """
    P = len(centres)
    xs = torch.as_tensor(x, dtype=torch.float32)[:, None, None, :].expand(P, 1, n_steps, x.shape[1])
    with torch.no_grad():
        states = models.unroll(spec, params, xs, s0[:, None].float())
        y = models.readout(spec, params, states)[:, 0, :, 0].numpy()
    half = y.shape[1] // 2
    with np.errstate(invalid="ignore"):  # a NaN output (a diverging run) stays NaN: no cycle
        growth = y[:, half:].std(1) / np.maximum(y[:, :half].std(1), 1e-300)
    states = states[:, 0].numpy()
    return turns(states.astype(np.float64), centres), cycles(y), y.std(1), growth, states


def turns(states: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Net turns [P] of each trajectory states [P, T, S] around its point centres [P, S], in the
    plane of the trajectory's top two principal axes (the angle unwrapped step by step; NaN
    where the centre is NaN)."""
    out = np.full(len(centres), np.nan)
    for k in np.flatnonzero(np.isfinite(centres[:, 0])):  # a 2-D PCA per trajectory
        mean, axes = pca(states[k], 2)
        z = (states[k] - mean) @ axes - (centres[k] - mean) @ axes
        ang = np.unwrap(np.arctan2(z[:, 1], z[:, 0]))
        out[k] = abs(ang[-1] - ang[0]) / (2 * np.pi)
    return out


def cycles(y: np.ndarray, band: float = 0.5) -> np.ndarray:
    """Oscillation cycles [P] of outputs y [P, T]: rises from below ``mean - band x std`` to
    above ``mean + band x std`` of each row (a Schmitt trigger: the wiggles of a harmonic or
    of noise near the mean are not cycles)."""
    with np.errstate(invalid="ignore"):  # NaN rows compare False: no cycles
        z = (y - y.mean(1, keepdims=True)) / np.maximum(y.std(1, keepdims=True), 1e-300)
    side = np.where(z > band, 1, np.where(z < -band, -1, 0))
    last = np.maximum.accumulate(np.where(side != 0, np.arange(y.shape[1]), 0), axis=1)
    held = np.take_along_axis(side, last, axis=1)  # the last side left, carried through the band
    return ((held[:, :-1] == -1) & (held[:, 1:] == 1)).sum(1)


# ------------------------------------------------------------------------------ integration


def cdi(group: Group, task, config: fp.FixedPointConfig, n_trials: int = 32, n_modes: int = 10):
    """Slow points per context, their coverage of the line, the integrating mode, the ablation.

    For context c the input is the context cue alone (streams zero). The search starts from the
    states visited on the probe trials of *both* contexts, so that it is seeded along the whole
    range the trajectories trace. Per network and context the *representative* slow point is the
    one nearest the centroid of that context's visited states; its eigenvalue nearest 1 is the
    integrating mode.

    Returns
    -------
    table : DataFrame, one row per network x context: ``n_slow``, ``coverage`` (fraction of the
        range the context's trajectories trace along the readout that lies near a slow point,
        :func:`lib.integration.line_coverage`), ``line_var`` (fraction of the slow points'
        variance on their first principal axis), ``lam_int`` (integrating eigenvalue),
        ``align_sel`` / ``align_other`` (|cos| between its left eigenvector and the drive of the
        selected / ignored stream).
    spectra : [n, 2, n_modes] moduli of the leading eigenvalues at the representative points.
    ablation : [n, 2, n_modes] response to a sustained unit input on the selected stream over
        ``task.n_time`` steps rebuilt from the top m modes (m = 1..n_modes), as a fraction of the
        full linear response, averaged over all slow points of the line
        (:func:`lib.integration.line_ablation`).
    found : {context: (FixedPoints, visited [n, V, S] of that context)} for figures.
    """
    trials = task.probe(n_trials)
    n, S = len(group.nets), group.spec.state_dim
    rows, found = [], {}
    spectra, ablation = np.full((n, 2, n_modes), np.nan), np.full((n, 2, n_modes), np.nan)
    for c, job in enumerate(cdi_searches(group, task, config, n_trials)):
        vis = fp.visited_states(group.spec, group.params, trials.inputs[trials.info["context"] == c])
        fps = job.result()
        found[c] = (fps, vis.numpy())
        traj_y = models.readout(group.spec, group.params, vis)[..., 0].numpy()  # [n, V]
        slow_y = readout_points(group.spec, group.params, fps)[:, 0]
        for k in range(n):
            m = np.flatnonzero(fps.net == k)
            row = dict(arch=group.spec.arch, activation=group.spec.activation, label=group.label,
                       net=k, context=c, n_slow=len(m),
                       coverage=integration.line_coverage(traj_y[k], slow_y[m]))
            if len(m):
                rep = m[np.argmin(np.linalg.norm(fps.points[m] - vis[k].mean(0).numpy(), axis=1))]
                row.update(_integrator(fps, rep, c), line_var=_line_fraction(fps.points[m]))
                spectra[k, c, :min(n_modes, S)] = np.abs(fps.eigvals[rep, :n_modes])
                ablation[k, c, :min(n_modes, S)] = _line_ablation(group, fps, m, c, task.n_time,
                                                                  n_modes)
            rows.append(row)
    return pd.DataFrame(rows), spectra, ablation, found


def cdi_searches(group: Group, task, config: fp.FixedPointConfig,
                 n_trials: int = 32) -> list[fp_cache.Search]:
    """The searches behind :func:`cdi`, one per context (input: that context's cue alone),
    each started from the states visited on the probe trials of both contexts."""
    trials = task.probe(n_trials)
    vis_all = fp.visited_states(group.spec, group.params, trials.inputs)
    out = []
    for c in (0, 1):
        x = np.r_[0.0, 0.0, np.eye(2)[c]]
        key = fp_cache.search_key(group.spec, group.params, trials.inputs, config, inputs=x,
                                  sources=("dynamics.py",))
        out.append(fp_cache.Search.of(key, group.spec, group.params, x, vis_all, config))
    return out


def _line_fraction(points: np.ndarray) -> float:
    """Fraction of the variance of points [m, S] on their first principal axis (NaN if m < 3)."""
    if len(points) < 3:
        return np.nan
    sv = np.linalg.svd(points - points.mean(0), compute_uv=False)
    return float(sv[0] ** 2 / (sv ** 2).sum())


def _integrator(fps, m: int, context: int) -> dict:
    """Integrating mode of point m: eigenvalue nearest 1, its left eigenvector's alignment."""
    lam, L, Bx = fps.eigvals[m], fps.left[m], fps.input_jacobians[m]  # Bx [S, I]
    j = int(np.argmin(np.abs(lam - 1)))
    return dict(lam_int=lam[j].real, lam_int_imag=abs(lam[j].imag), q=fps.q[m],
                align_sel=_cos(L[j], Bx[:, context]), align_other=_cos(L[j], Bx[:, 1 - context]))


def _line_ablation(group, fps, m: np.ndarray, context: int, n_time: int, n_modes: int):
    """Mode ablation [n_modes] averaged over the slow points m [P] of one network's line."""
    k = fps.net[m[0]]
    w = np.zeros(group.spec.state_dim)  # the readout sees h only (LSTM state: [h, c])
    w[:group.spec.n_hidden] = group.params["W_out"][k, :, 0].double().numpy()
    b = fps.input_jacobians[m][:, :, context]  # [P, S] drive of the selected stream
    return integration.line_ablation(fps.eigvals[m], fps.right[m], fps.left[m], b, w, n_time,
                                     n_modes)


def _cos(a, b) -> float:
    """|cos| of the angle between a complex vector a and a real vector b."""
    return float(np.abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


# ------------------------------------------------------------------------------ populations


def searches(nets: dict, tasks: dict, configs: dict, freqs=None) -> list[fp_cache.Search]:
    """Every search that :func:`run_flipflop`, :func:`run_sine` and :func:`run_cdi` make on
    the included networks ``nets`` ({task: [Network]}) of the given tasks, so that
    :func:`lib.fp_cache.fill` can run them side by side first; ``tasks``: {task: task object};
    ``configs``: {task: FixedPointConfig, or a list of them}; ``freqs``: the sine wave's
    command indices."""
    make = {"flipflop": lambda g, t, c: [flipflop_search(g, t, c)],
            "sine": lambda g, t, c: [sine_search(g, t, c, freqs)], "cdi": cdi_searches}
    as_list = lambda c: list(c) if isinstance(c, (list, tuple)) else [c]  # noqa: E731
    return [job for name, ns in nets.items() for cfg in as_list(configs[name])
            for g in groups(ns) for job in make[name](g, tasks[name], cfg)]



def run_flipflop(nets, task, config: fp.FixedPointConfig):
    """Flip-flop analysis of all networks: (table per network, {label: example}).

    The table is :func:`flipflop_table` plus ``retention`` (:func:`code_retention`).

    An example is (visited [V, S], points [M, S], n_unstable [M]) of a group's first network.
    """
    tables, examples = [], {}
    for g in groups(nets):
        fps, vis, codes = flipflop(g, task, config)
        tables.append(flipflop_table(g, fps, codes).assign(retention=code_retention(g, task)))
        first = fps.of(0)
        examples[g.label] = (vis[0], first.points, first.n_unstable)
    return pd.concat(tables, ignore_index=True), examples


def run_sine(nets, task, config: fp.FixedPointConfig, freqs=None):
    """Sine-wave analysis of all networks: (table per network x frequency, {label: example}).

    An example is (trajectory [2T, S], fixed point [S]) at the middle analysed frequency: the
    steps after the probe trial that the limit-cycle test measures, of the group's first network
    whose trajectory there is a limit cycle around its point, else of its first network where a
    point was found.
    """
    tables, examples = [], {}
    for g in groups(nets):
        df, fps, best, after = sine(g, task, config, freqs)
        tables.append(df)
        J = len(after) // len(g.nets)
        mid = np.arange(len(g.nets)) * J + J // 2
        found = mid[best[mid] >= 0]
        cycling = found[df.limit_cycle.to_numpy()[found]]
        if len(found):
            k = cycling[0] if len(cycling) else found[0]
            examples[g.label] = (after[k], fps.points[best[k]])
    return pd.concat(tables, ignore_index=True), examples


def run_cdi(nets, task, config: fp.FixedPointConfig, n_modes: int = 10):
    """CDI analysis of all networks.

    Returns (table per network x context, {label: spectra [n*2, n_modes]},
    {label: ablation [n*2, S]}, {label: (visited [V, S], [slow points per context])}).
    """
    tables, spectra, ablation, examples = [], {}, {}, {}
    for g in groups(nets):
        df, spec, abl, found = cdi(g, task, config, n_modes=n_modes)
        tables.append(df)
        spectra[g.label], ablation[g.label] = spec.reshape(-1, n_modes), abl.reshape(len(abl) * 2, -1)
        vis = np.concatenate([found[c][1][0] for c in (0, 1)])
        examples[g.label] = (vis, [found[c][0].of(0).points for c in (0, 1)])
    return pd.concat(tables, ignore_index=True), spectra, ablation, examples
