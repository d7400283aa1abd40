"""Hidden states of trained networks on the shared probe trials, and PCA of them.

Every network is driven by the same probe trials (``task.probe()``), so the rows of the
state matrices of two networks are the same (trial, time) samples and can be compared by
SVCCA and the other metrics of :mod:`lib.cca`.

*Which state.* For the LSTM the representational comparisons use ``h`` only (``state="h"``):
``h`` is what the readout sees and what the other architectures call their hidden state, it
has the same number of units ``H`` as every other network, and ``c`` is unbounded, so its
variance would dominate a PCA or CCA of ``[h, c]``. ``state="full"`` gives ``[h, c]`` for the
dynamics chapters.

>>> states = probe_states(pop.included(), task)             # doctest: +SKIP
>>> X = sample_matrix(states[0])                             # [B*T, H]
>>> pca = PCA(3).fit(X); traj = pca.transform(states[0])     # [B, T, 3]
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import models
from .checks import check_choice, check_positive
from .population import groups

STATES = ("h", "full")


def probe_states(networks, task, state: str = "h", n_trials: int | None = None) -> list:
    """States of every network on the task's shared probe trials, batched per shard.

    Parameters
    ----------
    networks : sequence of :class:`lib.population.Network`
    task : a task of :mod:`lib.tasks` (its ``probe()`` trials are used)
    state : ``"h"`` (hidden state; ``h`` for the LSTM) or ``"full"`` (``[h, c]`` for the LSTM)
    n_trials : number of probe trials where the task lets you choose (None: its default)

    Returns
    -------
    list of ndarray [B, T, U], float64, in the order of ``networks``
        ``U`` is the hidden size (``2H`` for the LSTM with ``state="full"``).
    """
    check_choice("state", state, STATES)
    trials = task.probe() if n_trials is None else task.probe(n_trials)
    x = torch.as_tensor(trials.inputs)[None]  # [1, B, T, I]: same trials for every network
    position = {id(net): i for i, net in enumerate(networks)}
    out = [None] * len(networks)
    for g in groups(networks):
        with torch.no_grad():
            s = models.unroll(g.spec, g.params, x)  # [n, B, T, S]
        if state == "h":
            s = s[..., :g.spec.n_hidden]
        for net, arr in zip(g.nets, s.double().numpy()):
            out[position[id(net)]] = arr
    return out


def network_table(networks) -> pd.DataFrame:
    """One row per network (in order): label, arch, activation, hidden size, shard, index."""
    return pd.DataFrame([dict(label=n.label, arch=n.spec.arch, activation=n.spec.activation,
                              n_hidden=n.spec.n_hidden, index=n.index) for n in networks])


def population_states(pop, state: str = "h"):
    """Probe states and table of the included networks of a trained population.

    Returns
    -------
    states : list of ndarray [B, T, U], in the order of ``pop.included()`` (grouped by
        architecture, then activation)
    table : DataFrame, one row per network (see :func:`network_table`) plus its test ``nmse``
    """
    nets = pop.included()
    task = pop.config.shards()[0].make_task()
    table = network_table(nets)
    full = pop.table()
    table["nmse"] = full.loc[full.included, "nmse"].to_numpy()
    return probe_states(nets, task, state), table


def sample_matrix(states: np.ndarray) -> np.ndarray:
    """Stack trials and time: states [B, T, U] -> samples [B*T, U]."""
    return states.reshape(-1, states.shape[-1])


class PCA:
    """Principal components of a [samples, units] matrix; projects arrays of any leading shape.

    Parameters
    ----------
    n_components : number of components kept (at most min(samples, units)).

    Attributes
    ----------
    mean_ : ndarray [U]
    components_ : ndarray [n_components, U], orthonormal rows
    explained_variance_ : ndarray [min(M, U)], variance along every principal axis
    explained_variance_ratio_ : ndarray [min(M, U)], the same as fractions of the total
    """

    def __init__(self, n_components: int = 3):
        check_positive("n_components", n_components, integer=True)
        self.n_components = n_components

    def fit(self, X: np.ndarray) -> "PCA":
        """Fit on samples X [M, U]."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or self.n_components > min(X.shape):
            raise ValueError(f"n_components={self.n_components} must be <= min(samples, units) "
                             f"of X with shape {X.shape}")
        self.mean_ = X.mean(axis=0)
        _, s, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        self.components_ = vt[:self.n_components]
        self.explained_variance_ = s ** 2 / max(len(X) - 1, 1)
        total = self.explained_variance_.sum()
        self.explained_variance_ratio_ = self.explained_variance_ / (total if total > 0 else 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Project X [..., U] -> [..., n_components]."""
        return (np.asarray(X, dtype=float) - self.mean_) @ self.components_.T


def participation_ratio(X: np.ndarray) -> float:
    """Effective dimensionality (sum λ)² / sum λ² of the covariance eigenvalues of X [M, U].

    It is 1 for data on a line and U for isotropic data; it is 0 for constant data.
    """
    lam = np.linalg.svd(np.asarray(X, float) - np.mean(X, axis=0), compute_uv=False) ** 2
    return float(lam.sum() ** 2 / (lam ** 2).sum()) if lam.sum() > 0 else 0.0


def dimensionality_table(states, table: pd.DataFrame, n_pcs=(2, 3)) -> pd.DataFrame:
    """Per network: variance explained by the top PCs and the participation ratio.

    Parameters
    ----------
    states : list of ndarray [B, T, U] (from :func:`probe_states`)
    table : DataFrame with one row per network (from :func:`network_table`)
    n_pcs : numbers of top components whose cumulative variance fraction is reported
    """
    rows = []
    for s in states:
        X = sample_matrix(s)
        ratio = PCA(1).fit(X).explained_variance_ratio_
        row = {f"var. top {k}": float(ratio[:k].sum()) for k in n_pcs}
        row["participation ratio"] = participation_ratio(X)
        rows.append(row)
    return pd.concat([table.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
