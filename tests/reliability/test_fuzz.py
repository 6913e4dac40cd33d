"""Fuzzing the readers of untrusted files: nothing escapes but the documented error type.

* The TrackML CSV reader (:func:`trkx_tf.trackml.io.read_event`) raises only DataError, on random bytes, mutated
  valid CSV text (plain and gzip), and frames of random column subsets and dtypes; what it returns follows the schema.
* The shard reader (:class:`trkx_tf.graphs.shards.Shard`, :class:`trkx_tf.graphs.reader.ShardReader`) raises only
  ShardError, on random byte flips and truncations of a valid shard, random attributes and datasets, and random
  manifest entries; a damaged shard that still reads gives exactly the original data (no silent corruption).
* Every other file trkx-tf reads back: ``*-edges.npz`` (:func:`trkx_tf.reco.outputs.read_edges`), module maps
  (:meth:`trkx_tf.graphs.module_map.ModuleMap.load`) and checkpoints (data, index and ``checkpoint`` state file,
  :func:`trkx_tf.train.checkpoints.resolve_checkpoint` + :func:`~trkx_tf.train.checkpoints.restore`), each
  truncated at a random offset, with random bit flips, or emptied: DataError / CheckpointError naming the file, or
  exactly the original content (the zip CRC-32 and TensorFlow's CRC-32C catch flipped data).

Each test is bounded (``max_examples``, no deadline) so the file runs in well under a minute; set
TRKX_FUZZ_EXAMPLES for a longer search.
"""

import gzip
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trkx_tf.errors import DataError, ShardError
from trkx_tf.graphs.graph import EventGraph
from trkx_tf.graphs.reader import ShardReader
from trkx_tf.graphs.shard_writer import write_manifest, write_shard
from trkx_tf.graphs.shards import DATASETS, Shard
from trkx_tf.trackml.io import NAN_ALLOWED, SCHEMAS, read_event

#: TRKX_FUZZ_EXAMPLES=5000 for a deeper run by hand
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. a silent overflow in a cast

FUZZ = settings(max_examples=int(os.environ.get("TRKX_FUZZ_EXAMPLES", "80")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
PRE = "event000000007"

# ------------------------------------------------------------------------------------------ a tiny valid event
HITS = """hit_id,x,y,z,volume_id,layer_id,module_id
1,-31.5,10.25,-120.0,8,2,100
2,-70.1,22.8,-240.5,8,4,210
3,-114.0,37.1,-390.0,8,6,330
4,12.0,-33.3,80.0,8,2,17
5,25.5,-70.0,170.25,8,4,40
6,40.0,-110.5,260.0,8,6,66
7,3.0,5.0,1.0e2,8,2,5
8,-1.5,-2.5,-3.5,8,4,9
"""
PARTICLES = """particle_id,vx,vy,vz,px,py,pz,q,nhits
4503599627370496,0.01,-0.02,1.5,-1.2,0.4,-2.0,1,3
4503599644147712,0.0,0.0,-3.0,0.3,-0.9,1.1,-1,3
"""
TRUTH = """hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz,weight
1,4503599627370496,-31.5,10.25,-120.0,-1.2,0.4,-2.0,0.1
2,4503599627370496,-70.1,22.8,-240.5,-1.2,0.4,-2.0,0.1
3,4503599627370496,-114.0,37.1,-390.0,-1.2,0.4,-2.0,0.1
4,4503599644147712,12.0,-33.3,80.0,0.3,-0.9,1.1,0.2
5,4503599644147712,25.5,-70.0,170.25,0.3,-0.9,1.1,0.2
6,4503599644147712,40.0,-110.5,260.0,,,,0.2
7,0,3.0,5.0,100.0,0.0,0.0,0.0,0.0
8,0,-1.5,-2.5,-3.5,0.0,0.0,0.0,0.0
"""
VALID = {"hits": HITS, "particles": PARTICLES, "truth": TRUTH}


def read_folder(files: dict[str, bytes], gz: frozenset = frozenset()):
    """read_event of event 7 made of these parts' bytes; returns the Event or the DataError."""
    with tempfile.TemporaryDirectory() as tmp:
        for part, raw in files.items():
            name = f"{PRE}-{part}.csv"
            if part in gz:
                Path(tmp, name + ".gz").write_bytes(raw)
            else:
                Path(tmp, name).write_bytes(raw)
        try:
            return read_event(tmp, 7, parts=("hits", "particles", "truth"))
        except DataError as exc:
            assert "\n" not in str(exc) and str(exc), repr(exc)
            return exc


def check_event(event) -> None:
    """A successfully read event follows the schema: columns, dtypes, finite values, unique hit ids."""
    if isinstance(event, DataError):
        return
    for part in ("hits", "particles", "truth"):
        df = getattr(event, part)
        if df is None:
            continue
        assert list(df.columns) == list(SCHEMAS[part]), part
        assert [str(t) for t in df.dtypes] == list(SCHEMAS[part].values()), part
    hits = event.hits
    assert len(hits) > 0 and hits["hit_id"].is_unique
    for part, nan_ok in (("hits", ()), ("particles", ()), ("truth", NAN_ALLOWED["truth"])):
        df = getattr(event, part)
        for col in df.columns if df is not None else ():
            values = df[col].to_numpy()
            ok = np.isfinite(values) | (np.isnan(values) if col in nan_ok else False)
            assert ok.all(), (part, col)


def test_the_valid_event_reads():
    event = read_folder({p: t.encode() for p, t in VALID.items()})
    assert not isinstance(event, DataError), event
    assert len(event.hits) == 8 and np.isnan(event.truth["tpx"].iloc[5])


@FUZZ
@given(part=st.sampled_from(sorted(VALID)), raw=st.binary(max_size=600), gz=st.booleans())
def test_csv_random_bytes(part, raw, gz):
    files = {p: t.encode() for p, t in VALID.items()}
    files[part] = raw
    check_event(read_folder(files, frozenset({part}) if gz else frozenset()))


_CSV_CHARS = st.sampled_from(list(",\n\r-+.eE0123456789 \"'naNifxyz_#;\t\x00\xff"))
_MUTATION = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 40)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.text(_CSV_CHARS, min_size=1, max_size=6)),
    st.tuples(st.just("replace"), st.integers(0, 10_000), st.text(_CSV_CHARS, min_size=1, max_size=3)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("dup_line"), st.integers(0, 100), st.just(0)),
    st.tuples(st.just("swap_lines"), st.integers(0, 100), st.integers(0, 100)),
)


def mutate(text: str, mutations) -> str:
    for op, a, b in mutations:
        n = max(len(text), 1)
        i = a % n
        if op == "delete":
            text = text[:i] + text[i + b:]
        elif op == "insert":
            text = text[:i] + b + text[i:]
        elif op == "replace":
            text = text[:i] + b + text[i + len(b):]
        elif op == "truncate":
            text = text[:i]
        else:
            lines = text.splitlines(keepends=True) or [""]
            j = a % len(lines)
            if op == "dup_line":
                lines.insert(j, lines[j])
            else:
                k = b % len(lines)
                lines[j], lines[k] = lines[k], lines[j]
            text = "".join(lines)
    return text


@FUZZ
@given(part=st.sampled_from(sorted(VALID)), mutations=st.lists(_MUTATION, min_size=1, max_size=4),
       gz=st.booleans())
def test_csv_mutated_text(part, mutations, gz):
    files = {p: t.encode() for p, t in VALID.items()}
    raw = mutate(VALID[part], mutations).encode("utf-8", errors="surrogatepass")
    files[part] = gzip.compress(raw, mtime=0) if gz else raw
    check_event(read_folder(files, frozenset({part}) if gz else frozenset()))


_CELL = st.one_of(
    st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=5), st.none(),
)


@st.composite
def frames(draw):
    """A frame of a random subset (and order) of the hits columns plus extras, each of a random kind of value."""
    schema = list(SCHEMAS["hits"])
    cols = draw(st.lists(st.sampled_from(schema + ["extra", "hit_id.1"]), unique=True, max_size=9))
    cols = draw(st.permutations(cols))
    n = draw(st.integers(0, 6))
    data = {}
    for c in cols:
        kind = draw(st.sampled_from(["int", "float", "cell", "const"]))
        if kind == "int":
            data[c] = draw(st.lists(st.integers(-2**40, 2**40), min_size=n, max_size=n))
        elif kind == "float":
            data[c] = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=n,
                                    max_size=n))
        elif kind == "cell":
            data[c] = draw(st.lists(_CELL, min_size=n, max_size=n))
        else:
            data[c] = [draw(_CELL)] * n
    return pd.DataFrame(data, columns=cols)


@FUZZ
@given(df=frames(), with_truth=st.booleans())
def test_csv_random_columns_and_dtypes(df, with_truth):
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    files = {"hits": buf.getvalue().encode("utf-8", errors="surrogatepass")}
    if with_truth:
        files.update(particles=PARTICLES.encode(), truth=TRUTH.encode())
    check_event(read_folder(files))


# ------------------------------------------------------------------------------------------------------ shards
def _graph(n_node, n_edge, event_id, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_edge).astype(np.uint8)
    return EventGraph(
        nodes=rng.normal(size=(n_node, 3)).astype(np.float32),
        senders=rng.integers(0, n_node, n_edge).astype(np.int32),
        receivers=rng.integers(0, n_node, n_edge).astype(np.int32),
        edge_labels=labels, edge_weights=rng.uniform(0.1, 1, n_edge).astype(np.float32),
        edge_pt=(labels * rng.uniform(0.1, 5, n_edge)).astype(np.float32),
        hit_id=np.arange(1, n_node + 1, dtype=np.int64), event_id=event_id, sector=-1,
    ).validate()


class ValidShard(tuple):
    """(folder, shard path, its bytes, original arrays), with a short repr for hypothesis' reports."""

    def __repr__(self) -> str:
        return f"ValidShard({self[1]})"


@pytest.fixture(scope="module", params=["none", "lzf"])
def valid_shard(request, tmp_path_factory):
    """(folder, shard path, its bytes, original arrays): a 3-graph shard with its manifest."""
    folder = tmp_path_factory.mktemp(f"shard-{request.param}")
    graphs = [_graph(20, 50, 1, 1), _graph(31, 64, 2, 2), _graph(7, 9, 3, 3)]
    info = write_shard(folder / "train-b00-00000.h5", graphs, 32, 64, feature_names=("r", "phi", "z"),
                       builder="module_map", compression=request.param)
    write_manifest(folder, [info], ("r", "phi", "z"))
    path = folder / info.file
    with Shard(path) as s:
        arrays = s.read_all()
    return ValidShard((folder, path, path.read_bytes(), arrays))


def read_shard(path, arrays, verify: bool) -> None:
    """Opens and reads every graph; only ShardError may escape; data read without error equals the original."""
    try:
        with Shard(path, verify=verify) as shard:
            for i in range(shard.n_graphs):
                g = shard.graph(i)
                for name in DATASETS:
                    np.testing.assert_array_equal(g[name], arrays[name][i], err_msg=name)
                shard.unpadded(i)
            assert shard.n_graphs == len(arrays["n_node"])
    except ShardError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc), repr(exc)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(1, 255)), min_size=1, max_size=8),
       verify=st.booleans())
def test_shard_byte_flips(valid_shard, flips, verify):
    _, _, raw, arrays = valid_shard
    data = bytearray(raw)
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "s.h5")
        path.write_bytes(bytes(data))
        read_shard(path, arrays, verify)


@FUZZ
@given(keep=st.floats(0.0, 1.0, exclude_max=True), verify=st.booleans())
def test_shard_truncations(valid_shard, keep, verify):
    _, _, raw, arrays = valid_shard
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "s.h5")
        path.write_bytes(raw[: int(len(raw) * keep)])
        read_shard(path, arrays, verify)


_ATTR_VALUE = st.one_of(
    st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12),
    st.binary(min_size=1, max_size=12).map(np.void),
    st.lists(st.integers(-5, 5), max_size=4).map(lambda v: np.asarray(v, np.int64)),
    st.sampled_from(["[]", "[1, 2]", '["a"]', "{}", "null", "not json", "sha256:" + "0" * 64]),
)
_ATTRS = ["schema_version", "node_budget", "edge_budget", "n_graphs", "n_features", "feature_names", "split",
          "builder", "checksum", "other"]


@FUZZ
@given(changes=st.lists(st.one_of(
    st.tuples(st.just("set"), st.sampled_from(_ATTRS), _ATTR_VALUE),
    st.tuples(st.just("del_attr"), st.sampled_from(_ATTRS), st.none()),
    st.tuples(st.just("del_dataset"), st.sampled_from([*DATASETS, "graph_sha256"]), st.none()),
    st.tuples(st.just("replace_dataset"), st.sampled_from([*DATASETS, "graph_sha256"]),
              st.tuples(st.sampled_from(["i1", "i4", "i8", "f4", "f8", "u1", "S8"]),
                        st.lists(st.integers(0, 4), max_size=3))),
), min_size=1, max_size=3), verify=st.booleans())
def test_shard_random_attrs_and_datasets(valid_shard, changes, verify):
    _, _, raw, arrays = valid_shard
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "s.h5")
        path.write_bytes(raw)
        with h5py.File(path, "r+") as f:
            for op, key, value in changes:
                if op == "set":
                    f.attrs[key] = value
                elif op == "del_attr":
                    if key in f.attrs:
                        del f.attrs[key]
                elif key in f:
                    del f[key]
                    if op == "replace_dataset":
                        dtype, shape = value
                        f.create_dataset(key, data=np.zeros(shape, dtype))
        try:
            with Shard(path, verify=verify) as shard:
                for i in range(shard.n_graphs):
                    shard.unpadded(i)
        except ShardError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), repr(exc)


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 2**40) | st.text(max_size=6),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                 max_size=3), max_leaves=6)


@FUZZ
@given(key=st.sampled_from(["file", "split", "bucket", "node_budget", "edge_budget", "checksum", "n_node",
                            "n_edge", "event_id", "sector", "extra"]), value=_JSON,
       top=st.sampled_from([None, "shards", "n_features", "feature_names", "schema_version"]), top_value=_JSON)
def test_manifest_random_entries(valid_shard, key, value, top, top_value):
    folder, path, _, _ = valid_shard
    data = json.loads((folder / "manifest.json").read_text())
    data["shards"][0][key] = value
    if top is not None:
        data[top] = top_value
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(path, Path(tmp, path.name))
        Path(tmp, "manifest.json").write_text(json.dumps(data))
        try:
            reader = ShardReader(tmp, None, shuffle=False)
            for step in reader.plan(0):
                reader.batch(step)
            reader.close()
        except ShardError as exc:
            assert "\n" not in str(exc), repr(exc)


# ------------------------------------------------------- .npz files (edges, module maps) and checkpoints
# Every file that trkx-tf reads back, damaged three ways: truncated at a random offset, random bit flips, zero
# length. Each case ends in the documented error (one line naming the file) or, where the damage missed the data
# (a zip header field nobody reads), in exactly the original content. Fewer examples than the CSV tests: these
# files are read whole, and a checkpoint restore costs TensorFlow time.
FEW = settings(max_examples=int(os.environ.get("TRKX_FUZZ_EXAMPLES", "25")), deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0, exclude_max=True)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 7)), min_size=1,
                                        max_size=6)),
    st.tuples(st.just("zero"), st.none()),
)


def damaged(raw: bytes, damage) -> bytes:
    """``raw`` truncated at a fraction of its length, with bits flipped, or emptied."""
    kind, arg = damage
    if kind == "truncate":
        return raw[: int(len(raw) * arg)]
    if kind == "zero":
        return b""
    data = bytearray(raw)
    for pos, bit in arg:
        data[pos % len(data)] ^= 1 << bit
    return bytes(data)


def _edges():
    from trkx_tf.reco.outputs import StageEdges

    rng = np.random.default_rng(3)
    n = 200
    keep_graph = np.ones(n, bool)
    keep_gnn = rng.random(n) < 0.3
    return StageEdges(rng.integers(1, 500, n), rng.integers(1, 500, n), {"graph": keep_graph, "gnn": keep_gnn},
                      {"gnn": rng.random(n).astype(np.float32)})


@pytest.fixture(scope="module")
def valid_edges(tmp_path_factory):
    from trkx_tf.reco.outputs import write_edges

    path = tmp_path_factory.mktemp("edges") / "event000000007-edges.npz"
    write_edges(path, _edges())
    return path.read_bytes()


@FEW
@given(damage=DAMAGE)
def test_edges_file_damage(valid_edges, damage):
    from trkx_tf.reco.outputs import read_edges

    original = _edges()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "event000000007-edges.npz")
        path.write_bytes(damaged(valid_edges, damage))
        try:
            back = read_edges(path)
        except DataError as exc:
            assert "\n" not in str(exc) and f"edges file {path}" in str(exc), repr(exc)
            return
    np.testing.assert_array_equal(back.senders, original.senders)
    np.testing.assert_array_equal(back.receivers, original.receivers)
    assert list(back.keep) == list(original.keep)
    for k in original.keep:
        np.testing.assert_array_equal(back.keep[k], original.keep[k])
    np.testing.assert_array_equal(back.scores["gnn"], original.scores["gnn"])


def _module_map():
    from trkx_tf.graphs.module_map import ModuleMap

    rng = np.random.default_rng(5)
    k, n_layer, u = 40, 6, 30
    lo = rng.normal(size=(k, 2))
    return ModuleMap(module_a=np.sort(rng.integers(0, 10**6, k)), module_b=rng.integers(0, 10**6, k),
                     count=rng.integers(1, 50, k), count_fit=rng.integers(0, 50, k), lo=lo, hi=lo + 1.0,
                     layer_a=np.arange(n_layer), layer_b=np.arange(n_layer) + 1,
                     layer_lo=-np.ones((n_layer, 2)), layer_hi=np.ones((n_layer, 2)), pt_min=0.5, quantile=0.01,
                     n_events=4, modules=np.sort(rng.integers(0, 10**6, u)), centre=rng.normal(size=(u, 3)),
                     skip_layers=1)


@pytest.fixture(scope="module")
def valid_module_map(tmp_path_factory):
    path = tmp_path_factory.mktemp("mm") / "module_map.npz"
    _module_map().save(path)
    return path.read_bytes()


@FEW
@given(damage=DAMAGE)
def test_module_map_damage(valid_module_map, damage):
    import dataclasses

    from trkx_tf.graphs.module_map import ModuleMap

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "module_map.npz")
        path.write_bytes(damaged(valid_module_map, damage))
        try:
            back = ModuleMap.load(path)
        except DataError as exc:
            assert "\n" not in str(exc) and f"module map {path}" in str(exc), repr(exc)
            return
    original = _module_map()
    for f in dataclasses.fields(ModuleMap):
        np.testing.assert_array_equal(getattr(back, f.name), getattr(original, f.name), err_msg=f.name)


@pytest.fixture(scope="module")
def valid_checkpoint(tmp_path_factory):
    """(prefix name, {file name: bytes}, {variable: value}) of a small tf.train.Checkpoint (two saves)."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("ckpt")
    values = {"w": np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32),
              "b": np.arange(16, dtype=np.float32), "step": np.int64(7)}
    ckpt = tf.train.Checkpoint(**{k: tf.Variable(v) for k, v in values.items()})
    manager = tf.train.CheckpointManager(ckpt, str(folder), max_to_keep=2)
    manager.save(1)
    prefix = manager.save(2)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    return os.path.basename(prefix), files, values


@FEW
@given(damage=DAMAGE, which=st.sampled_from(["data", "index", "checkpoint"]))
def test_checkpoint_damage(valid_checkpoint, damage, which):
    import tensorflow as tf

    from trkx_tf.errors import CheckpointError
    from trkx_tf.train.checkpoints import resolve_checkpoint, restore

    name, files, values = valid_checkpoint
    target = {"data": f"{name}.data-00000-of-00001", "index": f"{name}.index", "checkpoint": "checkpoint"}[which]
    with tempfile.TemporaryDirectory() as tmp:
        for fname, raw in files.items():
            Path(tmp, fname).write_bytes(damaged(raw, damage) if fname == target else raw)
        variables = {k: tf.Variable(tf.zeros_like(v)) for k, v in values.items()}
        try:
            prefix = resolve_checkpoint(tmp)
            restore(tf.train.Checkpoint(**variables), prefix, "the test objects", partial=False)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(tmp) in str(exc), repr(exc)
            return
    if which == "checkpoint" and prefix.endswith("ckpt-1"):  # a damaged state file that names the other save
        return
    for k, v in values.items():
        np.testing.assert_array_equal(variables[k].numpy(), v, err_msg=k)
