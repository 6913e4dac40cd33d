"""Fuzzing the two readers of untrusted files: nothing escapes but the documented error type.

* The TrackML CSV reader (:func:`trkx_tf.trackml.io.read_event`) raises only DataError, on random bytes, mutated
  valid CSV text (plain and gzip), and frames of random column subsets and dtypes; what it returns follows the schema.
* The shard reader (:class:`trkx_tf.graphs.shards.Shard`, :class:`trkx_tf.graphs.reader.ShardReader`) raises only
  ShardError, on random byte flips and truncations of a valid shard, random attributes and datasets, and random
  manifest entries; a damaged shard that still reads gives exactly the original data (no silent corruption).

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
from trkx_tf.graphs.shards import DATASETS, Shard, write_manifest, write_shard
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
