"""The thresholds stage on validation events with a partial truth only (the real labelled events): the filter table
and the labelling table from the partial-truth metrics, by hand on a tiny event; what is refused."""

import numpy as np
import pandas as pd
import pytest

from trkx_tf.config import load_config
from trkx_tf.errors import ConfigError, DataError
from trkx_tf.pipeline.thresholds import (choose_filter_threshold, choose_labelling, filter_table, labelling_table,
                                         tune_thresholds)
from trkx_tf.reco.outputs import StageEdges, edges_path, write_edges
from trkx_tf.trackml.io import Event, write_event

EVENT = 1007


def write_partial_event(folder):
    """Group 7 on rows 0, 1, 2 (three barrel layers, +x), group 9 on rows 3, 4, 6 (-x), row 5 unlabelled."""
    hits = pd.DataFrame({
        "hit_id": [11, 12, 13, 14, 15, 16, 17],
        "x": [30.0, 70.0, 110.0, -30.0, -70.0, 70.5, -110.0],
        "y": [1.0, 2.0, 3.0, 1.0, 2.0, 2.0, 3.0],
        "z": [5.0, 10.0, 15.0, -5.0, -10.0, 10.0, -15.0],
        "volume_id": [8] * 7, "layer_id": [2, 4, 6, 2, 4, 4, 6], "module_id": [1, 2, 3, 4, 5, 2, 6],
    })
    partial = pd.DataFrame({"hit_id": [11, 12, 13, 14, 15, 17], "group": [7, 7, 7, 9, 9, 9],
                            "pt_min": [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]})
    write_event(folder, Event(EVENT, hits, partial_truth=partial))
    # edges (hit ids): true 11-12, 12-13, 14-15, 15-17; skip 11-13; cross 12-15; unknown 12-16
    s = np.array([11, 12, 14, 15, 11, 12, 12])
    r = np.array([12, 13, 15, 17, 13, 15, 16])
    filt = np.array([0.9, 0.3, 0.05, 0.7, 0.8, 0.6, 0.95], np.float32)
    gnn = np.array([0.9, 0.9, 0.9, 0.9, 0.2, 0.4, 0.9], np.float32)
    one = np.ones(len(s), bool)
    return StageEdges(s, r, {"graph": one, "filter": one, "gnn": one}, {"filter": filt, "gnn": gnn})


def test_partial_filter_and_labelling_tables(tmp_path):
    write_edges(edges_path(tmp_path / "infer", EVENT), write_partial_event(tmp_path / "ev"))
    table = filter_table(tmp_path / "ev", tmp_path / "infer", [EVENT], [0.1, 0.5], 0.5)
    # 4 labelled-truth-graph edges found by the graph. 0.1 keeps 11-12, 12-13, 15-17 (true), 11-13 (skip), 12-15
    # (cross) of the labelled edges (12-16 is unknown: in no count); 0.5 keeps 11-12, 15-17, 11-13, 12-15
    assert table[0] == {"threshold": 0.1, "edges_per_event": 5.0, "efficiency": 0.75, "purity": 0.8}
    assert table[1] == {"threshold": 0.5, "edges_per_event": 4.0, "efficiency": 0.5, "purity": 0.75}
    assert choose_filter_threshold(table, 0.7) == 0.1
    # pT > 1: only group 7 (pt_min 1.0): 2 truth edges; 0.5 keeps 11-12 of them
    hi = filter_table(tmp_path / "ev", tmp_path / "infer", [EVENT], [0.5], 1.0)
    assert hi[0]["efficiency"] == 0.5

    cfg = load_config(None, ["eval.pt_cuts=[0.5, 1.0, 2.0]"])
    rows = labelling_table(tmp_path / "ev", tmp_path / "infer", [EVENT], [0.3, 0.5], ["cc"], cfg.eval)
    # 0.5: tracks {11, 12, 13, 16} and {14, 15, 17}: both groups matched. 0.3: the cross edge 12-15 joins them: each
    # group is 3 of the track's 6 labelled hits, not more than half: none matched
    eff = {row["threshold"]: row["tracks"]["pt>0.5"]["technical_efficiency"] for row in rows}
    assert eff == {0.3: 0.0, 0.5: 1.0}
    assert rows[1]["tracks"]["pt>1"]["technical_efficiency"] == 1.0 and rows[0]["partial"]
    assert np.isnan(rows[1]["tracks"]["pt>2"]["technical_efficiency"])  # a cut the classes cannot tell
    assert choose_labelling(rows, "technical_efficiency", "pt>0.5")["threshold"] == 0.5


def test_partial_validation_refusals(tmp_path):
    write_partial_event(tmp_path / "ev")
    cfg = load_config(None, ["pipeline.thresholds.metric=score"])
    with pytest.raises(ConfigError, match="needs a full truth"):
        tune_thresholds(cfg, "x.yaml", [], tmp_path / "ev", tmp_path / "out", [EVENT])
    cfg = load_config(None, ["eval.pt_cuts=[2.0]", "pipeline.thresholds.selection=pt>2"])
    with pytest.raises(ConfigError, match="cannot be told on a partial truth"):
        tune_thresholds(cfg, "x.yaml", [], tmp_path / "ev", tmp_path / "out", [EVENT])
    write_event(tmp_path / "none", Event(5, pd.DataFrame({
        "hit_id": [1], "x": [1.0], "y": [1.0], "z": [1.0], "volume_id": [8], "layer_id": [2], "module_id": [1]})))
    with pytest.raises(DataError, match="neither truth"):
        tune_thresholds(load_config(None), "x.yaml", [], tmp_path / "none", tmp_path / "out", [5])
