"""trkx-build on events of the project's simulator (real TrackML geometry), read back over two ranks."""

import json

import numpy as np
import pytest

from trkx_tf.cli.build import main
from trkx_tf.graphs.reader import ShardReader

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.fixture(scope="module")
def simulated(shared_trackml, tmp_path_factory):
    from trkx_tf.trackml.simulate import simulate_events

    folder = tmp_path_factory.mktemp("sim")
    simulate_events(folder, shared_trackml / "detectors.csv.gz", 4, pileup=10, seed=3, workers=1, progress=False)
    return folder


def test_build_and_read_simulated_events(simulated, tmp_path, capsys):
    out = tmp_path / "shards"
    assert main(["--input", str(simulated), "--out", str(out), "--workers", "1", "--no-progress",
                 "--set", "data.val_fraction=0.25", "--set", "graph.sectors.phi=2",
                 "--set", "graph.module_map.quantile=0"]) == 0
    printed = capsys.readouterr().out
    assert "efficiency pT>0.5 GeV" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"] == {"train": [0, 1, 2], "val": [3]}
    assert manifest["n_features"] == 7  # the simulator writes cells
    assert manifest["padding"]["elements"] <= 1.10
    per_event = {e["event_id"]: e for e in manifest["events"]}
    for e in (0, 1, 2):  # events the map was learned on: every true edge above pt_min inside the windows
        assert per_event[e]["n_true_pt_found"] == per_event[e]["n_true_pt"]
    readers = [ShardReader(out, "train", rank=r, size=2, seed=1) for r in range(2)]
    assert readers[0].steps_per_epoch == readers[1].steps_per_epoch
    seen = []
    for rd in readers:
        for b in rd.epoch(0):
            seen.extend(int(x) for x in b["n_edge"] if x > 0)
            assert np.all(b["edge_weights"][b["edge_mask"] == 0] == 0)
    assert sorted(seen) == sorted(int(x) for x in readers[0].graph_n_edge)
