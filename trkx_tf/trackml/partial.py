"""The partial truth of the real labelled events: which hits are labelled, and making one from a full truth.

The real labelled events (``../shared/trackml/labelled``, its README) carry ``event<ID>-partial-truth.csv.gz``
(``hit_id, group, pt_min``; read by :func:`trkx_tf.trackml.io.read_event`) instead of a truth. The labelled hits
are, and only these:

* hits in the pixel volumes :data:`PIXEL_VOLUMES` (every layer) of particles with pT > 1 GeV (``pt_min`` 1.0);
* hits in the pixel barrel (volume :data:`PIXEL_BARREL`) of particles with 0.5 < pT <= 1 GeV (``pt_min`` 0.5);
* at most one hit per particle and layer ``(volume_id, layer_id)``: the one with the smallest r;
* a particle with fewer than 2 such hits is not labelled.

``group`` (>= 1) joins the labelled hits of one particle; groups mean nothing across events. A hit without a row
is *unlabelled*, which is not the same as noise: it may be noise, a strip hit, a hit of a particle below 0.5 GeV,
an endcap hit of a 0.5–1 GeV particle, a second hit of a particle on a layer, or a hit whose label was dropped.

:func:`partial_truth_from_full` applies these rules to an event with a full truth (event 1000, simulated
events), so that metrics and training on partial truth can be checked against the full truth on the same hits.

Shape vocabulary as in :mod:`trkx_tf.trackml.io`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trkx_tf.errors import DataError
from trkx_tf.trackml.io import PT_MIN_CLASSES

#: Pixel volumes (endcap -z, barrel, endcap +z): where hits of pT > 1 GeV particles are labelled.
PIXEL_VOLUMES = (7, 8, 9)
#: The pixel barrel: the only volume where hits of 0.5 < pT <= 1 GeV particles are labelled.
PIXEL_BARREL = 8
#: A labelled particle has at least this many labelled hits.
MIN_LABELLED_HITS = 2


def partial_truth_from_full(hits: pd.DataFrame, particles: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The partial truth the labelled events' rules (module docstring) give for an event with a full truth.

    Args:
      hits: ``[n_hits]`` rows with ``hit_id, x, y, volume_id, layer_id``.
      particles: ``[n_particles]`` rows with ``particle_id, px, py``.
      truth: ``[n_hits]`` rows with ``hit_id, particle_id`` (0 = noise).

    Returns:
      ``[n_labelled]`` rows sorted by hit_id: ``hit_id`` int32, ``group`` int64 (1, 2, … in the order of the
      particles' ids), ``pt_min`` float32 (1.0 for pT > 1 GeV, 0.5 for 0.5 < pT <= 1 GeV), as
      :func:`~trkx_tf.trackml.io.read_event` returns a partial truth.

    Raises:
      DataError: a column is missing, or a truth hit_id or particle_id is not in hits or particles.
    """
    for df, cols, what in ((hits, ("hit_id", "x", "y", "volume_id", "layer_id"), "hits"),
                           (particles, ("particle_id", "px", "py"), "particles"),
                           (truth, ("hit_id", "particle_id"), "truth")):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataError(f"{what}: missing column(s) {', '.join(missing)}")
    pt = pd.Series(np.hypot(particles["px"].to_numpy(np.float64), particles["py"].to_numpy(np.float64)),
                   index=particles["particle_id"].to_numpy(np.int64))
    if not pt.index.is_unique:
        raise DataError("particles: particle_id is not unique")
    t = truth[["hit_id", "particle_id"]].astype({"hit_id": np.int64, "particle_id": np.int64})
    t = t[t["particle_id"] != 0]
    h = hits[["hit_id", "x", "y", "volume_id", "layer_id"]].astype({"hit_id": np.int64})
    df = t.merge(h, on="hit_id", how="left", validate="one_to_one")
    if df["volume_id"].isna().any():
        raise DataError(f"truth: hit_id {int(df.loc[df['volume_id'].isna(), 'hit_id'].iloc[0])} is not in hits")
    p_pt = pt.reindex(df["particle_id"].to_numpy()).to_numpy()
    if np.isnan(p_pt).any():
        raise DataError(f"truth: particle {int(df['particle_id'].to_numpy()[np.isnan(p_pt)][0])} is not in "
                        f"particles")
    vol = df["volume_id"].to_numpy()
    keep = ((p_pt > PT_MIN_CLASSES[1]) & np.isin(vol, PIXEL_VOLUMES)) | (
        (p_pt > PT_MIN_CLASSES[0]) & (p_pt <= PT_MIN_CLASSES[1]) & (vol == PIXEL_BARREL))
    df = df[keep].assign(r=np.hypot(df["x"].to_numpy(np.float64), df["y"].to_numpy(np.float64))[keep],
                         pt=p_pt[keep])
    # one hit per particle and layer: the smallest r (ties: the smaller hit_id)
    df = df.sort_values(["particle_id", "volume_id", "layer_id", "r", "hit_id"], kind="stable")
    df = df.drop_duplicates(["particle_id", "volume_id", "layer_id"], keep="first")
    df = df[df.groupby("particle_id")["hit_id"].transform("size") >= MIN_LABELLED_HITS]
    group = np.unique(df["particle_id"].to_numpy(), return_inverse=True)[1].reshape(-1) + 1
    out = pd.DataFrame({"hit_id": df["hit_id"].to_numpy(np.int32), "group": group.astype(np.int64),
                        "pt_min": np.where(df["pt"].to_numpy() > PT_MIN_CLASSES[1], PT_MIN_CLASSES[1],
                                           PT_MIN_CLASSES[0]).astype(np.float32)})
    return out.sort_values("hit_id", kind="stable").reset_index(drop=True)
