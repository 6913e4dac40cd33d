"""Hits-only padded HDF5 shards of the hit transformers, and the batch source the training loop reads.

The conventions of the graph shards (:mod:`trkx_tf.graphs.shards`), without edges: one shard holds up to
``events_per_shard`` events of ONE bucket, each padded to the bucket's hit budget ``Nb`` (a multiple of
``hit_quantum``; budgets chosen by :func:`trkx_tf.graphs.buckets.choose_buckets` on the hit counts). ``G`` events
per shard, ``F`` input features (:data:`~trkx_tf.transformer.data.INPUT_FEATURES`), ``K`` targets
(:data:`~trkx_tf.transformer.data.TARGETS`). Schema (``kind: hits``, version 1):

================  =================  =====================================================================
dataset           shape / dtype      meaning
================  =================  =====================================================================
``hits``          [G, Nb, F] f4      input features (padded rows 0)
``hit_id``        [G, Nb] i8         TrackML hit id (padded 0)
``particle_id``   [G, Nb] i8         particle of the hit (0: noise or padding)
``targets``       [G, Nb, K] f4      the hit's particle's track parameters (padded 0)
``hit_weights``   [G, Nb] f4         loss weight: 1 for a hit of a particle, 0 for noise and padding
``n_hit``         [G] i4             real hits of each event
``event_id``      [G] i8             event id
================  =================  =====================================================================

Attributes: ``kind`` (``hits``), ``schema_version``, ``hit_budget``, ``n_events``, ``feature_names`` and
``target_names`` (JSON lists), ``split``, ``checksum`` (``sha256:<hex>`` over the datasets in this order: name,
dtype, shape and C-order bytes, as the graph shards). A shard is written through
:func:`trkx_tf.files.atomic_path` (renamed into place when complete); ``manifest.json`` through
:func:`trkx_tf.files.write_text_atomic`, last. The reader verifies every shard's checksum when it opens it.

A batch (what the model and the tasks take) is ``{"hits" [B, Nb, F], "mask" [B, Nb], "targets" [B, Nb, K],
"weights" [B, Nb]}``; ``mask`` is 1 for real hits (noise included), ``weights`` is ``hit_weights``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from trkx_tf.config import DataConfig, TransformerConfig, schema_default
from trkx_tf.errors import DataError, ShardError
from trkx_tf.files import atomic_path, write_text_atomic
from trkx_tf.graphs import shards as graph_shards
from trkx_tf.graphs.buckets import choose_buckets
from trkx_tf.trackml.io import list_events, read_event
from trkx_tf.transformer.data import INPUT_FEATURES, TARGETS, hit_inputs, hit_targets

SCHEMA_VERSION = 1
KIND = "hits"
MANIFEST = "manifest.json"
#: dataset -> dtype, in checksum order
DATASETS = {"hits": "float32", "hit_id": "int64", "particle_id": "int64", "targets": "float32",
            "hit_weights": "float32", "n_hit": "int32", "event_id": "int64"}


def checksum(arrays: dict) -> str:
    """``sha256:<hex>`` of the datasets in :data:`DATASETS` order, as the graph shards' checksum."""
    return graph_shards.checksum(arrays, tuple(DATASETS))


def event_arrays(events_dir: os.PathLike | str, event_id: int) -> dict:
    """One event's unpadded arrays: hits [n, F], hit_id, particle_id, targets [n, K], hit_weights.

    Raises:
      DataError: the event is unreadable or lacks truth or particles.
    """
    event = read_event(events_dir, event_id, parts=("hits", "particles", "truth"))
    targets, pid = hit_targets(event)
    return {"hits": hit_inputs(event.hits), "hit_id": event.hits["hit_id"].to_numpy(np.int64),
            "particle_id": pid, "targets": targets, "hit_weights": (pid != 0).astype(np.float32)}


def pad_events(events: Sequence[dict], event_ids: Sequence[int], budget: int) -> dict:
    """The shard datasets of events (:func:`event_arrays`) padded to ``budget`` hits.

    Raises:
      ShardError: an event has more hits than the budget.
    """
    g = len(events)
    out = {"hits": np.zeros((g, budget, len(INPUT_FEATURES)), np.float32), "hit_id": np.zeros((g, budget), np.int64),
           "particle_id": np.zeros((g, budget), np.int64),
           "targets": np.zeros((g, budget, len(TARGETS)), np.float32),
           "hit_weights": np.zeros((g, budget), np.float32), "n_hit": np.zeros(g, np.int32),
           "event_id": np.asarray(event_ids, np.int64)}
    for i, ev in enumerate(events):
        n = len(ev["hit_id"])
        if n > budget:
            raise ShardError(f"event {event_ids[i]}: {n} hits do not fit the budget of {budget}")
        for k in ("hits", "hit_id", "particle_id", "targets", "hit_weights"):
            out[k][i, :n] = ev[k]
        out["n_hit"][i] = n
    return out


def write_hit_shard(path: os.PathLike | str, arrays: dict, split: str, compression: str = "lzf") -> dict:
    """Writes one hits-only shard atomically; returns its manifest entry.

    Raises:
      OSError: the folder is not writable or the disk is full (no file is left at ``path``).
    """
    import h5py

    path = Path(path)
    digest = checksum(arrays)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            for name, dtype in DATASETS.items():
                a = arrays[name]
                chunks = (1,) + a.shape[1:] if a.ndim > 1 and a.size else None
                f.create_dataset(name, data=a, dtype=dtype, chunks=chunks,
                                 compression=compression if chunks else None, track_times=False)
            f.attrs.update({"kind": KIND, "schema_version": SCHEMA_VERSION, "hit_budget": int(arrays["hits"].shape[1]),
                            "n_events": int(len(arrays["n_hit"])), "feature_names": json.dumps(list(INPUT_FEATURES)),
                            "target_names": json.dumps(list(TARGETS)), "split": split, "checksum": digest})
    return {"file": path.name, "split": split, "hit_budget": int(arrays["hits"].shape[1]), "checksum": digest,
            "n_hit": arrays["n_hit"].tolist(), "event_id": arrays["event_id"].tolist()}


def build_hit_shards(events_dir: os.PathLike | str, shards_dir: os.PathLike | str,
                     val_fraction: float = schema_default(DataConfig, "val_fraction"),
                     events_per_shard: int = schema_default(TransformerConfig, "events_per_shard"),
                     hit_quantum: int = schema_default(TransformerConfig, "hit_quantum"), max_buckets: int = 4) -> dict:
    """Writes the shards of every event of ``events_dir`` (the last ``val_fraction`` of the ids: validation).

    Args:
      events_dir: TrackML events with truth and particles (:mod:`trkx_tf.transformer.data`).
      shards_dir: created if needed; its manifest is replaced last.
      val_fraction: share of the events (the highest ids) in the ``val`` split.
      events_per_shard: G.
      hit_quantum: budgets are multiples of it.
      max_buckets: at most this many hit budgets.

    Returns:
      The manifest (also written to ``shards_dir/manifest.json``).

    Raises:
      DataError: no events, or an event lacks truth or particles.
    """
    ids = list_events(events_dir)
    if not ids:
        raise DataError(f"{events_dir}: no TrackML events to shard (make them with trkx-tracker data)")
    events = [event_arrays(events_dir, i) for i in ids]
    n_val = int(round(val_fraction * len(ids)))
    split = ["train"] * (len(ids) - n_val) + ["val"] * n_val
    sizes = np.array([[len(e["hit_id"]), 0] for e in events], np.int64)
    budgets = choose_buckets(sizes, 1.10, max_buckets, hit_quantum)[:, 0]
    bucket = np.searchsorted(np.sort(budgets), sizes[:, 0])
    budgets = np.sort(budgets)
    out = Path(shards_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for s in ("train", "val"):
        for b, budget in enumerate(budgets):
            rows = [i for i in range(len(ids)) if split[i] == s and bucket[i] == b]
            for k in range(0, len(rows), events_per_shard):
                chunk = rows[k:k + events_per_shard]
                arrays = pad_events([events[i] for i in chunk], [ids[i] for i in chunk], int(budget))
                entries.append(write_hit_shard(out / f"{s}-b{b}-{k // events_per_shard:04d}.h5", arrays, s))
    manifest = {"kind": KIND, "schema_version": SCHEMA_VERSION, "feature_names": list(INPUT_FEATURES),
                "target_names": list(TARGETS), "events_dir": str(events_dir), "shards": entries}
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def read_hit_shards(shards_dir: os.PathLike | str, split: str) -> list[dict]:
    """Every shard of one split, read whole and verified.

    Returns:
      The shards' arrays (dicts of :data:`DATASETS`).

    Raises:
      ShardError: no manifest, a wrong kind or version, a missing shard, or a checksum that does not match.
    """
    import h5py

    folder = Path(shards_dir)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ShardError(f"{folder / MANIFEST}: cannot read the hit-shard manifest ({exc.__class__.__name__}); "
                         f"build the shards with trkx-tracker data") from None
    if manifest.get("kind") != KIND or manifest.get("schema_version") != SCHEMA_VERSION:
        raise ShardError(f"{folder}: not hits-only shards of schema {SCHEMA_VERSION} (rebuild with trkx-tracker data)")
    out = []
    for entry in manifest["shards"]:
        if entry["split"] != split:
            continue
        try:
            with h5py.File(folder / entry["file"], "r") as f:
                arrays = {name: f[name][...] for name in DATASETS}
        except (OSError, KeyError) as exc:
            raise ShardError(f"{folder / entry['file']}: unreadable hit shard ({exc.__class__.__name__})") from None
        if checksum(arrays) != entry["checksum"]:
            raise ShardError(f"{folder / entry['file']}: checksum mismatch (damaged shard; rebuild it)")
        out.append(arrays)
    return out


def to_batch(arrays: dict, rows: Sequence[int]) -> dict:
    """The model's batch of some events of one shard (see the module docstring)."""
    rows = np.asarray(rows)
    n = arrays["n_hit"][rows]
    budget = arrays["hits"].shape[1]
    mask = (np.arange(budget)[None, :] < n[:, None]).astype(np.float32)
    return {"hits": arrays["hits"][rows], "mask": mask, "targets": arrays["targets"][rows],
            "weights": arrays["hit_weights"][rows]}


class HitBatchSource:
    """The training loop's :class:`~trkx_tf.train.loop.BatchSource` over hits-only shards, dealt to data ranks.

    Every epoch the events of each bucket are shuffled (seeded by ``seed`` and the epoch) and cut into global
    batches of ``size * events_per_step`` events (a short remainder is dropped); the global batches of all
    buckets are shuffled together; data rank ``rank`` takes its ``events_per_step`` slice of each. So every rank
    sees the same sequence of global batches, and ``size=1, events_per_step=2k`` gives the same global batches
    as ``size=2, events_per_step=k``.

    Args:
      shards: :func:`read_hit_shards` of one split.
      events_per_step: events per rank and step.
      rank, size: this data rank and the number of data ranks.
      shuffle: shuffle per epoch (off: file order, for validation).
      seed: shuffle seed.
    """

    def __init__(self, shards: Sequence[dict], events_per_step: int, rank: int = 0, size: int = 1,
                 shuffle: bool = True, seed: int = 0):
        if not shards:
            raise DataError("hit shards: this split has no events")
        self.events_per_step, self.rank, self.size = int(events_per_step), int(rank), int(size)
        self.graphs_per_step = self.events_per_step
        self.shuffle, self.seed = shuffle, seed
        by_budget: dict[int, list] = {}
        for s, arrays in enumerate(shards):
            by_budget.setdefault(arrays["hits"].shape[1], []).extend((s, i) for i in range(len(arrays["n_hit"])))
        self._shards = list(shards)
        self._groups = [np.array(v) for _, v in sorted(by_budget.items())]

    def _plan(self, epoch: int) -> list:
        rng = np.random.default_rng([self.seed, epoch])
        width = self.size * self.events_per_step
        plan = []
        for group in self._groups:
            order = rng.permutation(len(group)) if self.shuffle else np.arange(len(group))
            plan += [group[order[k:k + width]] for k in range(0, len(order) - width + 1, width)]
        if self.shuffle:
            plan = [plan[i] for i in rng.permutation(len(plan))]
        return plan

    def num_batches(self, epoch: int) -> int:
        return len(self._plan(epoch))

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict]:
        for members in self._plan(epoch)[start:]:
            mine = members[self.rank * self.events_per_step:(self.rank + 1) * self.events_per_step]
            parts = [to_batch(self._shards[s], [i]) for s, i in mine]
            yield {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
