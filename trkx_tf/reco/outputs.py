"""The files ``trkx-infer`` writes and ``trkx-eval`` reads.

Output folder of ``trkx-infer``::

    event<ID:09d>-submission.csv   TrackML submission (event_id, hit_id, track_id), every hit of the event once
    event<ID:09d>-edges.npz        the scored edges of every stage (infer.save_edges), for the edge metrics
    timings.json                   wall time of every stage, per event and in total

The edges file holds, for the ``n_edge`` candidate edges of one event:

=====================  ===============  ===================================================================
key                    shape / dtype    meaning
=====================  ===============  ===================================================================
``senders``            [n_edge] int64   hit_id of the edge's inner end (as the graph builder directed it)
``receivers``          [n_edge] int64   hit_id of the outer end
``stages``             [S] str          the stages, in pipeline order (``graph``, ``filter``, ``gnn``)
``keep_<stage>``       [n_edge] bool    the edges the stage keeps (cumulative)
``score_<stage>``      [n_edge] f32     the stage's score (NaN where the edge did not reach the stage;
                                        absent for ``graph``)
=====================  ===============  ===================================================================
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from trkx_tf.errors import DataError
from trkx_tf.files import load_npz, write_npz_atomic
from trkx_tf.trackml.io import event_ids_with, event_prefix, find_part

TIMINGS_FILE = "timings.json"


def submission_path(folder: os.PathLike | str, event_id: int) -> Path:
    """``<folder>/event<ID:09d>-submission.csv``."""
    return Path(folder) / f"{event_prefix(event_id)}-submission.csv"


def edges_path(folder: os.PathLike | str, event_id: int) -> Path:
    """``<folder>/event<ID:09d>-edges.npz``."""
    return Path(folder) / f"{event_prefix(event_id)}-edges.npz"


def find_submission(folder: os.PathLike | str, event_id: int) -> Optional[Path]:
    """The submission of an event in a folder (``.csv`` or ``.csv.gz``), or None."""
    return find_part(folder, event_id, "submission")


def list_submissions(folder: os.PathLike | str) -> list[int]:
    """Event ids that have a submission in a folder, sorted.

    Raises:
      DataError: the folder does not exist.
    """
    return event_ids_with(folder, "submission", "submissions")


@dataclasses.dataclass(frozen=True)
class StageEdges:
    """The scored edges of one event, stage by stage.

    Attributes:
      senders: [n_edge] int64 hit ids.
      receivers: [n_edge] int64 hit ids.
      keep: stage -> [n_edge] bool, in pipeline order.
      scores: stage -> [n_edge] float32 (NaN where the edge did not reach the stage).
    """

    senders: np.ndarray
    receivers: np.ndarray
    keep: Mapping[str, np.ndarray]
    scores: Mapping[str, np.ndarray]

    @property
    def n_edge(self) -> int:
        return int(len(self.senders))


def write_edges(path: os.PathLike | str, edges: StageEdges) -> None:
    """Writes a :class:`StageEdges` as ``.npz`` atomically (temporary name, then rename).

    Raises:
      DataError: an array does not have shape [n_edge].
    """
    path = Path(path)
    n = edges.n_edge
    arrays = {"senders": np.asarray(edges.senders, np.int64), "receivers": np.asarray(edges.receivers, np.int64),
              "stages": np.asarray(list(edges.keep), dtype=np.str_)}
    for name, mask in edges.keep.items():
        arrays[f"keep_{name}"] = np.asarray(mask, bool)
    for name, score in edges.scores.items():
        arrays[f"score_{name}"] = np.asarray(score, np.float32)
    for key, value in arrays.items():
        if key != "stages" and value.shape != (n,):
            raise DataError(f"{path.name}: {key} has shape {list(value.shape)}, expected [{n}]")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_npz_atomic(path, **arrays)


def read_edges(path: os.PathLike | str) -> StageEdges:
    """Reads an edges file written by :func:`write_edges`.

    Raises:
      DataError: the file is missing, empty, truncated, damaged (a CRC-32 mismatch) or inconsistent; the message
        names the file.
    """
    path = Path(path)
    data = load_npz(path, "edges file")
    try:
        stages = [str(s) for s in data["stages"]]
        senders, receivers = data["senders"].astype(np.int64), data["receivers"].astype(np.int64)
        keep = {s: data[f"keep_{s}"].astype(bool) for s in stages}
        scores = {s: data[f"score_{s}"] for s in stages if f"score_{s}" in data}
    except KeyError as exc:
        raise DataError(f"edges file {path}: lacks array {exc}; write it again (trkx-infer)") from None
    except (TypeError, ValueError) as exc:
        raise DataError(f"edges file {path}: unexpected content ({exc}); write it again (trkx-infer)") from None
    n = len(senders)
    for name, arr in [("receivers", receivers)] + [(f"keep_{k}", v) for k, v in keep.items()]:
        if arr.shape != (n,):
            raise DataError(f"edges file {path}: {name} has shape {list(arr.shape)}, expected [{n}]")
    return StageEdges(senders, receivers, keep, scores)
