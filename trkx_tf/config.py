"""The one typed configuration schema of trkx-tf.

A config is a YAML file whose top-level sections map one-to-one onto the frozen schemas below. Every default
lives here and only here (a library signature that offers one takes it with :func:`schema_default`). Unknown
keys and wrong types are errors (:class:`~trkx_tf.errors.ConfigError`) whose
single-line message names the file and the dotted key. Any key can be overridden from the command line with
``--set section.key=value``; the value is parsed as YAML (``--set train.lr=1e-3``, ``--set model.gnn.steps=4``,
``--set graph.buckets=[1000,2000]``).

Relative paths in a config are taken relative to the current working directory.

Typical use::

    cfg = load_config("configs/demo.yaml", overrides=["train.epochs=2"])
    cfg.train.epochs  # -> 2
    save_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticUndefined

from trkx_tf.errors import ConfigError
from trkx_tf.files import write_text_atomic


class Section(BaseModel):
    """Base of every config section: immutable, no unknown keys, no silent coercion of str to number."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, validate_default=True)


# ---------------------------------------------------------------------------------------------------- sections
class RunConfig(Section):
    """Where results go and how the run is named."""

    out_dir: str = "runs"  # parent folder of the run directories
    name: str = "demo"  # run directory is <out_dir>/<name>
    seed: int = 0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class RealDataConfig(Section):
    """Real labelled events (partial truth) beside the simulated ones: masked-label shards mixed into training, and
    the validation events that training monitors (docs/real_data.md)."""

    events_dir: str  # the labelled events (event<ID>-hits / -partial-truth files)
    shards_dir: str  # their masked-label shards (trkx-build --real); the GNN's: the filter-kept ones
    train_events: int = Field(40, ge=0)  # the first N event ids (sorted) are training events
    val_events: int = Field(8, ge=0)  # the next M are validation events (selection); the rest are left out
    fraction: float = Field(0.25, ge=0.0, le=1.0)  # share of real graphs in each training epoch (0: none, 1: only)
    validation: Literal["real", "sim"] = "real"  # what trkx-train validates on (early stopping, metrics.jsonl)


class DataConfig(Section):
    """Where the TrackML events and the detector geometry are."""

    detector: Optional[str] = None  # TrackML detectors.csv[.gz] (trkx-simulate): the configs name it
    events_dir: str = "data/events"  # TrackML CSV events (trkx-simulate output or real events)
    shards_dir: str = "data/shards"  # padded HDF5 graph shards (trkx-build output)
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    real: Optional[RealDataConfig] = None  # real labelled events mixed in; None: simulated events only


class LayerShiftConfig(Section):
    """A misaligned layer (trkx_tf/trackml/simulate/systematics.py): built ``dx`` mm along global x from its
    nominal place; its hits are simulated there and reported in the nominal geometry (reconstruction's)."""

    volume: int
    layer: int
    dx: float  # mm


class SimulateConfig(Section):
    """The event simulator (``trkx-simulate``); the geometry is ``data.detector``, the output ``data.events_dir``."""

    events: int = Field(8, ge=1)
    first_event: int = Field(0, ge=0)  # id of the first event; event i's random stream is (seed, i)
    pileup: float = Field(200.0, ge=0.0, le=1800.0)  # mean pile-up vertices (Poisson) besides the hard scatter
    noise_fraction: float = Field(0.146, ge=0.0, lt=1.0)  # noise hits / all hits (real event 1000: 0.146)
    seed: int = Field(0, ge=0)
    workers: int = Field(0, ge=0)  # 0: one per CPU core
    cells: bool = True  # also write the cells files
    compress: bool = False  # write .csv.gz instead of .csv
    field_error: float = Field(0.0, gt=-0.5, lt=0.5)  # simulated field = nominal 2 T x (1 + this); reco assumes 2 T
    misalignment: tuple[LayerShiftConfig, ...] = ()  # layers built away from their nominal place (reco: nominal)


class ModuleMapConfig(Section):
    """The module-map candidate-edge builder (``graph.builder: module_map``), see docs/graphs.md."""

    path: Optional[str] = None  # a saved module map (.npz) to use; None: learn one from the input's training events
    pt_min: float = Field(0.4, ge=0.0)  # GeV; true edges of particles above it are learned (windows)
    connect_pt_min: Optional[float] = Field(None, ge=0.0)  # GeV; ... make module pairs connected (None: pt_min)
    quantile: float = Field(0.001, ge=0.0, lt=0.5)  # tail fraction cut on each side of a layer pair's range
    margin: float = Field(0.05, ge=0.0)  # every window widens by this fraction of its layer pair's range
    rare_margin: float = Field(0.5, ge=0.0)  # a range resting on n edges widens by this / (n + 1) more
    min_count: int = Field(1, ge=1)  # module pairs seen fewer times are not used
    neighbours: int = Field(0, ge=0)  # unseen module pairs borrow windows from the pairs of this many nearest modules
    skip_layers: int = Field(0, ge=0, le=3)  # also learn the module pairs of particles missing up to this many layers


class EmbeddingGraphConfig(Section):
    """The learned-embedding candidate-edge builder (``graph.builder: embedding``)."""

    model: Optional[str] = None  # trained embedding model (checkpoint) to embed hits with
    radius: float = Field(0.1, gt=0.0)  # radius of the neighbourhood in the embedding space
    max_neighbours: int = Field(64, ge=1)  # at most this many neighbours per hit (the nearest)
    search: Literal["kdtree", "faiss", "hnswlib"] = "kdtree"  # neighbour search (faiss/hnswlib: optional packages)


class SectorConfig(Section):
    """Optional eta/phi sectors for training (inference always uses whole events)."""

    phi: int = Field(1, ge=1)  # sectors in phi
    eta: int = Field(1, ge=1)  # sectors in eta (equal-population edges over the event's hits)
    overlap: float = Field(0.0, ge=0.0)  # extra margin each side, in rad (phi) and in units of eta


class GraphConfig(Section):
    """Graph construction and sharding (``trkx-build``), see docs/graphs.md and docs/shards.md."""

    builder: Literal["module_map", "embedding"] = "module_map"
    use_cells: bool = True  # add cell-shape features when the events have cells files
    r_scale: float = Field(1000.0, gt=0.0)  # mm; feature r / r_scale
    z_scale: float = Field(1000.0, gt=0.0)  # mm; feature z / z_scale
    edge_weight: Literal["uniform", "pt", "hit"] = "uniform"  # weight of true edges (fake edges weigh 1)
    pt_cut: float = Field(0.0, ge=0.0)  # GeV; true edges of particles below it get weight 0 (neutral)
    # auto: an event's full truth, else its partial truth as masked labels (unknown edges weigh 0), else none;
    # masked: masked labels for every event (a full truth is first cut to a partial one by the labelled rules)
    labels: Literal["auto", "masked"] = "auto"
    unlabelled: Literal["refuse", "skip"] = "refuse"  # an event with neither truth nor partial truth: exit 2, or drop it
    module_map: ModuleMapConfig = ModuleMapConfig()
    embedding: EmbeddingGraphConfig = EmbeddingGraphConfig()
    sectors: SectorConfig = SectorConfig()
    bucket_overhead: float = Field(1.10, ge=1.0)  # target padded/real elements
    max_buckets: int = Field(8, ge=1)  # buckets chosen from the data: the fewest that meet bucket_overhead
    buckets: tuple[tuple[int, int], ...] = ()  # fixed [nodes, edges] budgets instead; empty: chosen from the data
    graphs_per_shard: int = Field(16, ge=1)
    filter_ckpt: Optional[str] = None  # keep only the candidate edges this edge filter scores >= filter_threshold
    filter_threshold: Optional[float] = Field(None, ge=0.0, le=1.0)  # for filter_ckpt; None: infer.filter_threshold
    compression: Literal["none", "lzf", "gzip"] = "lzf"
    workers: int = Field(0, ge=0)  # 0: one per CPU core


class FilterConfig(Section):
    """Edge-filter MLP (:class:`trkx_tf.models.filter.EdgeFilter`)."""

    hidden: int = Field(256, ge=1)
    layers: int = Field(3, ge=1)  # hidden layers, then Linear(1)
    layernorm: bool = True
    edge_features: bool = False  # also feed the edge features (Δr, Δφ, Δz, Δη, z0, Δφ/Δr; graphs/features.py)


class GNNConfig(Section):
    """The GNN edge classifier: Interaction Network (:class:`trkx_tf.models.interaction.InteractionNetwork`) or
    attention GNN (:class:`trkx_tf.models.attention.AttentionGNN`; it reads steps, aggregation, layernorm,
    all_steps_loss, edge_features and its own attention_hidden / attention_layers)."""

    kind: Literal["interaction", "attention"] = "interaction"
    attention_hidden: int = Field(64, ge=1)  # AGNN latent width (the Exa.TrkX paper: [64, 64, 64] MLPs)
    attention_layers: int = Field(3, ge=2)  # AGNN Linear layers per node MLP; its edge network: these + Linear(1)
    hidden: int = Field(128, ge=1)
    layers: int = Field(2, ge=2)  # Linear layers of each MLP (at least one hidden layer)
    steps: int = Field(8, ge=1)  # message-passing iterations
    skip: Literal["residual", "latent0"] = "residual"
    aggregation: Literal["receivers", "both"] = "receivers"  # "both": also sum the messages of sent edges
    layernorm: bool = True
    all_steps_loss: bool = False
    edge_features: bool = False  # the edge encoder also takes the edge features (graphs/features.py)


class EmbeddingConfig(Section):
    """Metric-learning embedding MLP (:class:`trkx_tf.models.embedding.EmbeddingMLP`) and its pair mining
    (:mod:`trkx_tf.train.pairs`); defaults: the Exa.TrkX paper's network (6 x 512, tanh, LayerNorm, 8-d)."""

    hidden: int = Field(512, ge=1)
    layers: int = Field(6, ge=1)  # hidden layers, then Linear(dim)
    dim: int = Field(8, ge=1)
    layernorm: bool = True
    activation: Literal["tanh", "relu"] = "tanh"
    normalize: bool = False  # unit-norm embeddings (the radius then has a fixed scale)
    periodic_phi: bool = True  # also feed cos(phi), sin(phi): hits either side of phi = +-pi are neighbours
    margin: float = Field(1.0, gt=0.0)  # hinge margin, also the radius of the pair metrics and of hard negatives
    random_pairs: int = Field(4, ge=0)  # random partners per hit
    knn_pairs: int = Field(16, ge=0)  # at most this many hard negatives per hit: nearest neighbours within the margin
    knn_start_epoch: int = Field(1, ge=0)  # random pairs only before this epoch, then hard negatives too
    candidate_negatives: bool = False  # also use the fake candidate edges of the shards as negative pairs


class TripletConfig(Section):
    """Triplet classifier for seeding: the edge-filter MLP on the triplet graph (trkx_tf/graphs/triplets.py)."""

    hidden: int = Field(64, ge=1)
    layers: int = Field(3, ge=1)  # hidden layers, then Linear(1)
    layernorm: bool = True


class ModelConfig(Section):
    """All models; each sub-section feeds one model constructor."""

    filter: FilterConfig = FilterConfig()
    gnn: GNNConfig = GNNConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    triplet: TripletConfig = TripletConfig()


class TrainConfig(Section):
    """The training loop (``trkx-train``, :func:`trkx_tf.train.loop.train`)."""

    model: Literal["filter", "gnn", "embedding"] = "gnn"
    epochs: int = Field(2, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    lr_scaling: Literal["linear", "sqrt", "none"] = "linear"
    warmup_epochs: float = Field(1.0, ge=0.0)
    lr_decay: Literal["none", "cosine"] = "none"  # cosine: from the peak after warm-up down to the last step
    lr_final_ratio: float = Field(0.05, ge=0.0, le=1.0)  # the cosine decay's last learning rate / peak
    graphs_per_step: int = Field(1, ge=1)  # per replica (data rank)
    true_weight: float = Field(1.0, gt=0.0)
    fake_weight: float = Field(1.0, gt=0.0)
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    # validation records also give the efficiency at this purity and the purity at this efficiency (edge models),
    # each at the threshold that achieves it: val_efficiency_at_purity, val_purity_at_efficiency (docs/hpo.md)
    target_purity: float = Field(0.9, gt=0.0, lt=1.0)
    target_efficiency: float = Field(0.99, gt=0.0, lt=1.0)
    mixed_precision: Literal["none", "bf16", "fp16"] = "none"
    checkpoint_steps: bool = False  # gradient checkpointing of message-passing steps
    checkpoint_every: int = Field(1, ge=1)  # epochs between checkpoints
    keep_checkpoints: int = Field(3, ge=1)
    max_steps_per_epoch: int = Field(0, ge=0)  # 0: all
    early_stopping_patience: int = Field(0, ge=0)  # epochs without improvement; 0: off
    early_stopping_metric: Literal["val_loss", "val_efficiency", "val_purity", "val_f1",
                                   "val_efficiency_at_purity", "val_purity_at_efficiency",
                                   "loss", "efficiency", "purity", "f1"] = "val_loss"
    log_every: int = Field(10, ge=1)  # steps between per-step TensorBoard scalars (step/loss, step/learning_rate)
    # fine-tuning: the model's weights from this checkpoint (prefix or folder) or release folder (models/NAME) when
    # the run has none of its own to resume; the optimizer, schedule and data position start fresh. None: initial
    # weights from run.seed
    init_checkpoint: Optional[str] = None


class BackendConfig(Section):
    """Which distributed backend runs the training loop."""

    name: Literal["auto", "single", "horovod", "tfdist"] = "auto"
    threads: int = Field(0, ge=0)  # TensorFlow intra- and inter-op threads per rank; 0: TensorFlow's default
    pin_cores: bool = False  # pin each rank to its own `threads` cores (by local rank): clean scaling measurements
    # tf.distribute replicas per process (MirroredStrategy); 0: every visible GPU in one process, one per worker in a
    # cluster. Without GPUs, > 1 splits the CPU into that many logical devices (tests; the multi-device path on a CPU)
    local_replicas: int = Field(0, ge=0)
    gradient_groups: int = Field(1, ge=0)  # Horovod: gradient allreduces per step (1: one fused one); 0: Horovod's cycles


class ProjectionConfig(Section):
    """The stated model that projects strong scaling beyond the measured ranks (``trkx-scaling report``).

    Step time at N ranks (:mod:`trkx_tf.scaling.projection`): the per-rank compute (``batch: global``: the 1-rank
    step compute c divided by N; ``batch: rank``: c, the epoch is split over the ranks) times the load imbalance
    (1 with the reader's size buckets), plus the part not ``overlap``-ped of a ring allreduce of ``gradient_bytes``:
    2(N-1) hops of ``latency_us`` and 2(N-1)/N of the gradient over the slowest link (intra-node up to
    ``ranks_per_node`` ranks, inter-node beyond), plus ``step_overhead_ms`` at N > 1. c is ``step_compute_s`` if
    set, else the measured 1-rank step time times ``compute_scale``.
    """

    enabled: bool = False
    ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    batch: Literal["global", "rank"] = "global"  # fixed as N grows: the global batch, or the per-rank batch
    step_compute_s: float = Field(0.0, ge=0.0)  # c on the target device, s per step at 1 rank; 0: measured x scale
    epoch_time_s: float = Field(0.0, ge=0.0)  # 1-rank epoch time on the target device; 0: measured x compute_scale
    compute_scale: float = Field(1.0, gt=0.0)  # measured compute x this (e.g. CPU -> GPU time ratio)
    gradient_bytes: int = Field(0, ge=0)  # 0: from gradient_from, else 4 bytes x the "params" the trainer logs
    gradient_from: Optional[str] = None  # a config file: 4 bytes x the trainable parameters of its train.model
    latency_us: float = Field(5.0, ge=0.0)  # per ring hop
    intra_node_gb_s: float = Field(100.0, gt=0.0)  # GB/s between ranks of one node (NVLink-class)
    inter_node_gb_s: float = Field(12.5, gt=0.0)  # GB/s between nodes (100 Gb/s InfiniBand)
    ranks_per_node: int = Field(4, ge=1)
    overlap: float = Field(0.0, ge=0.0, le=1.0)  # fraction of the allreduce hidden behind the backward pass
    step_overhead_ms: float = Field(0.0, ge=0.0)  # fixed per-step cost at N > 1 (e.g. Horovod's negotiation)
    unpadded_from: Optional[str] = None  # a shards folder: also project unpadded graphs, imbalance from their sizes
    unpadded_unit: Literal["graph", "event"] = "graph"  # one rank's step: one graph of it, or one whole event
    paper: bool = True  # draw the Exa.TrkX paper's Horovod points (V100) beside the projection


class ScalingConfig(Section):
    """A scaling study (``trkx-scaling run|report``): rank counts, the fixed workload, the launcher."""

    name: str = "local"  # records go to <out_dir>/<name>/
    out_dir: str = "scaling_studies"
    mode: Literal["strong", "weak"] = "strong"
    ranks: tuple[int, ...] = (1, 2)
    repeats: int = Field(3, ge=1)
    warmup_epochs: int = Field(1, ge=0)  # first epochs of every run, left out of the records
    epochs: int = Field(2, ge=1)  # measured epochs per run, after the warm-up
    steps_per_epoch: int = Field(10, ge=1)  # the same at every N
    global_batch: int = Field(2, ge=1)  # strong: graphs per step over all ranks; every N must divide it
    rank_batch: int = Field(1, ge=1)  # weak: graphs per step per rank
    launcher: Literal["horovodrun", "horovodrun-gloo", "mpirun", "srun", "sbatch", "tfconfig", "plain"] = "horovodrun"
    # single (launcher plain): one trkx-train process, no distributed backend: the reference the 1-rank runs of
    # the distributed backends are checked against (trkx_tf/scaling/checks.py)
    backend: Literal["horovod", "tfdist", "single"] = "horovod"
    tasks_per_node: int = Field(2, ge=1)  # srun / sbatch: ranks placed on each node
    sbatch_args: tuple[str, ...] = ()  # extra sbatch options (launcher sbatch), e.g. ["--gpus-per-task=1"]
    timeout_s: int = Field(3600, ge=1)  # per run
    projection: ProjectionConfig = ProjectionConfig()


class InferConfig(Section):
    """Inference (``trkx-infer``): checkpoints, thresholds and the track labelling, see docs/reco.md."""

    filter_ckpt: Optional[str] = None  # edge-filter checkpoint (file prefix or folder); None: no filter stage
    gnn_ckpt: Optional[str] = None  # Interaction Network checkpoint (file prefix or folder); required
    module_map: Optional[str] = None  # module map (.npz) for graph.builder=module_map; None: graph.module_map.path
    filter_threshold: float = Field(0.1, ge=0.0, le=1.0)  # candidate edges scoring at least this reach the GNN
    gnn_threshold: float = Field(0.5, ge=0.0, le=1.0)  # edges scoring at least this join hits into tracks
    filter_chunk_edges: int = Field(262144, ge=1)  # the filter scores this many edges at a time (bounds memory)
    labelling: Literal["cc", "walk"] = "cc"  # connected components, or components with branches walked through
    save_edges: bool = True  # also write event<ID>-edges.npz (scored edges of every stage, for trkx-eval)
    threads: int = Field(0, ge=0)  # threads of the models (TensorFlow intra-op, or the numpy engine's); 0: all cores
    compute_dtype: Literal["float32", "bfloat16"] = "float32"  # model arithmetic (variables stay float32)
    # released models (--model): "numpy" evaluates them with numpy + numba, never importing TensorFlow; "auto" does
    # so where that engine supports the model; checkpoints always run on TensorFlow (docs/reco.md)
    engine: Literal["auto", "tensorflow", "numpy"] = "auto"
    seed_ckpt: Optional[str] = None  # triplet classifier checkpoint; trkx-infer --seeds needs it
    seed_doublet_threshold: float = Field(0.1, ge=0.0, le=1.0)  # GNN-scored edges at least this become doublets
    seed_threshold: float = Field(0.5, ge=0.0, le=1.0)  # triplets scoring at least this are seeds


class EvalConfig(Section):
    """Evaluation (``trkx-eval``): what counts as a track and a reconstructable particle, the pT selections."""

    min_track_hits: int = Field(5, ge=1)  # reconstructed tracks with fewer hits are ignored
    reconstructable_hits: int = Field(5, ge=1)  # particles with at least this many hits are reconstructable
    pt_cuts: tuple[float, ...] = (0.5, 1.0)  # GeV; metrics for "all" and for particles with pT above each


class EventSetConfig(Section):
    """A set of events of the pipeline (``pipeline.validation``, ``pipeline.test``, ``pipeline.map_events``)."""

    name: str = Field("val", pattern=r"^[A-Za-z0-9_]+$")  # its stages: simulate_<name>, infer_<name>, eval_<name>
    dir: str = ""  # the events folder
    simulate: int = Field(0, ge=0)  # > 0: the pipeline simulates this many events into dir (stage simulate_<name>)
    first_event: int = Field(0, ge=0)  # id of the first simulated event
    seed: Optional[int] = Field(None, ge=0)  # of the simulated events; None: simulate.seed
    pileup: Optional[float] = Field(None, ge=0.0, le=1800.0)  # of the simulated events; None: simulate.pileup
    ids: tuple[int, ...] = ()  # only these events of dir (e.g. [1000]); empty: every event of dir


class ThresholdsConfig(Section):
    """How the pipeline's thresholds stage chooses the inference settings on the validation events."""

    filter_target: Optional[float] = Field(0.99, gt=0.0, le=1.0)  # largest filter cut keeping this fraction of the
    #   selection's true edges the graph has; None: keep infer.filter_threshold
    filter_grid: tuple[float, ...] = (0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5)
    gnn_grid: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    labelling: tuple[Literal["cc", "walk"], ...] = ("cc", "walk")
    selection: str = "pt>0.5"  # the eval selection of the filter target and of the metric (eval.pt_cuts)
    metric: Literal["technical_efficiency", "score"] = "technical_efficiency"  # maximised over gnn_grid x labelling


class EventFoldersConfig(Section):
    """The pipeline's training events taken from existing folders (the TrackML challenge's ``train_*`` folders)
    instead of simulated: the ``events`` stage links their files into ``data.events_dir``."""

    dirs: tuple[str, ...] = Field(min_length=1)  # folders of TrackML events (event<ID>-hits/cells/particles/truth)
    exclude: tuple[int, ...] = ()  # event ids never linked, besides those the validation and test sets name
    first: int = Field(0, ge=0)  # only the first N events (sorted ids) of all the folders; 0: all


class ReleaseStageConfig(Section):
    """The pipeline's ``release`` stage: ``trkx-release`` of the trained models, the module map, the chosen
    thresholds and the test sets' metrics into ``<out>/<name>`` (replaced whole; trkx_tf/release_writer.py)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # the release's name: trkx-infer --model NAME
    out: str = "models"  # the releases folder
    data: str = ""  # what the models were trained on (one line of the model card)
    description: str = ""  # one line for trkx-info
    note: str = ""  # anything else the model card must say


class PipelineConfig(Section):
    """``trkx-pipeline run``: the stages from simulation to evaluation (trkx_tf/pipeline/__init__.py)."""

    dir: Optional[str] = None  # pipeline.json, logs, module map, thresholds, infer/ and eval/; None: <out_dir>/<name>
    launcher: Literal["one", "horovodrun", "mpirun", "srun"] = "one"  # how the training stages start
    np: int = Field(1, ge=1)  # training ranks (horovodrun, mpirun, srun)
    simulate: bool = True  # simulate the training events into data.events_dir; false: they exist (real events)
    events: Optional[EventFoldersConfig] = None  # the training events linked from these folders (simulate ignored)
    map_events: Optional[EventSetConfig] = None  # learn the module map from these; None: the training split
    gnn_events: int = Field(0, ge=0)  # the GNN's shards from the first N training events; 0: all of them
    filtered_shards_dir: Optional[str] = None  # the GNN's shards (filter-kept edges); None: <data.shards_dir>-filtered
    validation: Optional[EventSetConfig] = None  # the thresholds stage chooses on these; None: no such stage
    thresholds: ThresholdsConfig = ThresholdsConfig()
    test: tuple[EventSetConfig, ...] = ()  # inferred and evaluated (stages infer_<name>, eval_<name>)
    release: Optional[ReleaseStageConfig] = None  # the last stage: the models released as <out>/<name>
    set: dict[str, tuple[str, ...]] = {}  # stage name -> extra KEY=VALUE overrides of that stage's command


class StudyModelConfig(Section):
    """A trained model set of ``trkx-study systematics``: a config that names its checkpoints, module map and
    thresholds (``infer.*``), with its graph, model and eval sections."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # in the tables and folder names
    config: Optional[str] = None  # its config file; None: the study's own config
    set: tuple[str, ...] = ()  # KEY=VALUE overrides of it
    set_file: Optional[str] = None  # YAML of KEY: value overrides applied last (trkx-pipeline's thresholds.yaml)


class SystematicsConfig(Section):
    """``trkx-study systematics``: the Exa.TrkX paper's robustness studies (noise, pile-up, misalignment) and a field
    error, on simulated test events and on variants of a real event (docs/systematics.md)."""

    out_dir: str = "studies/systematics/run"  # study.md, results.json, plots/
    work_dir: str = "data/systematics"  # the study's events, submissions and evaluations (large)
    studies: tuple[Literal["noise", "pileup", "misalignment", "field", "real"], ...] = (
        "noise", "pileup", "misalignment", "field", "real")
    events: int = Field(2, ge=1)  # simulated test events per point
    first_event: int = Field(100000, ge=0)  # their ids, away from the training ids; every point: the same collisions
    seed: int = Field(22, ge=0)
    pileup: Optional[float] = Field(None, ge=0.0, le=1800.0)  # μ of the other points; None: simulate.pileup
    noise_fraction: Optional[float] = Field(None, ge=0.0, lt=1.0)  # of the other points; None: simulate.noise_fraction
    noise_fractions: tuple[float, ...] = (0.0, 0.04, 0.08, 0.12, 0.16, 0.20)  # the paper's Table 1
    pileups: tuple[float, ...] = (50.0, 100.0, 150.0, 200.0, 250.0, 300.0)  # the paper's Figure 6 range
    shifts: tuple[float, ...] = (0.1, 0.5, 1.0)  # mm along x, of each group of shift_layers
    shift_layers: tuple[tuple[tuple[int, int], ...], ...] = (((8, 2),), ((8, 2), (8, 4), (8, 6), (8, 8)))  # (volume,
    #   layer) groups: the innermost barrel layer; the four innermost (pixel barrel) layers
    # how a simulated misalignment point is made: "simulate": events simulated with the layers built shifted (their
    # later random draws differ from the nominal events'); "shift_hits": the nominal events with the layers' hits
    # moved by -dx in x, as the real-event variant and the paper do (the same events: the change is exact)
    misalignment: Literal["simulate", "shift_hits"] = "simulate"
    field_errors: tuple[float, ...] = (-0.01, -0.001, 0.001, 0.01)  # simulated field / assumed one - 1
    models: tuple[StudyModelConfig, ...] = ()  # the first runs every study, the others noise only; empty: this config
    real_dir: Optional[str] = None  # the real test event's folder; None: no real-event variants
    real_event: int = Field(1000, ge=0)  # only reconstructed and scored, never trained on
    real_noise_fractions: tuple[float, ...] = (0.20, 0.25)  # noise hits added up to these fractions (its own: ~0.146)
    real_shift: float = 1.0  # mm along x, of the first group of shift_layers, in the real event
    workers: int = Field(0, ge=0)  # simulation processes; 0: one per CPU core


class TransformerConfig(Section):
    """TrackFormers-style hit transformers (``trkx-tracker``, :mod:`trkx_tf.transformer`, docs/trackformers.md)."""

    head: Literal["reg", "cla"] = "reg"  # EncReg (sin φ, cos φ, θ, q/pT per hit) or EncCla (balanced parameter bins)
    source_dir: str = "data/tf_source"  # full simulated (or real labelled) events the reduced sets are drawn from
    events_dir: str = "data/tml"  # the reduced events (TrackML CSV: hits, particles, truth)
    shards_dir: str = "data/tml_shards"  # their hits-only padded HDF5 shards
    particles_min: int = Field(10, ge=1)  # each reduced event keeps N particles, N uniform in [min, max]
    particles_max: int = Field(50, ge=1)
    min_particle_hits: int = Field(3, ge=1)  # particles with fewer hits are never drawn
    pt_min: float = Field(0.0, ge=0.0)  # GeV; particles below it are never drawn
    volumes: tuple[int, ...] = ()  # keep only hits of these volumes (e.g. [7, 8, 9]: pixels); empty: all
    events_per_shard: int = Field(64, ge=1)
    hit_quantum: int = Field(32, ge=1)  # shard hit budgets are multiples of it
    hidden: int = Field(64, ge=1)  # model width
    num_heads: int = Field(4, ge=1)  # attention heads (hidden must divide by it)
    layers: int = Field(4, ge=1)  # encoder layers
    ff: int = Field(128, ge=1)  # feed-forward width
    phi_bins: int = Field(8, ge=1)  # EncCla: equal-population bins of φ, θ and q/pT (classes: their product)
    theta_bins: int = Field(8, ge=1)
    qpt_bins: int = Field(2, ge=1)
    events_per_step: int = Field(8, ge=1)  # per data rank
    cluster: Literal["hdbscan", "dbscan"] = "hdbscan"  # EncReg track building in the regressed space
    min_cluster_size: int = Field(3, ge=2)  # HDBSCAN min_cluster_size / DBSCAN min_samples
    eps: float = Field(0.05, ge=0.0)  # DBSCAN radius (> 0); HDBSCAN cluster_selection_epsilon (0: none)
    qpt_scale: float = Field(1.0, gt=0.0)  # q/pT (1/GeV) is multiplied by this before clustering
    phi_sectors: int = Field(16, ge=1)  # local attention on full events: φ sectors ...
    eta_sectors: int = Field(8, ge=1)  # ... times η sectors (equal hit counts) ...
    overlap: float = Field(0.05, ge=0.0)  # ... each widened by this (rad in φ, units of η) for context


class Config(Section):
    """The whole toolkit's configuration."""

    run: RunConfig = RunConfig()
    data: DataConfig = DataConfig()
    simulate: SimulateConfig = SimulateConfig()
    graph: GraphConfig = GraphConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    backend: BackendConfig = BackendConfig()
    scaling: ScalingConfig = ScalingConfig()
    infer: InferConfig = InferConfig()
    eval: EvalConfig = EvalConfig()
    pipeline: PipelineConfig = PipelineConfig()
    systematics: SystematicsConfig = SystematicsConfig()
    transformer: TransformerConfig = TransformerConfig()


def schema_default(section: type[Section], key: str) -> Any:
    """The schema's default of one key, for a library signature that offers it (so that it is stated only here).

    Args:
      section: the section's class, e.g. :class:`TrainConfig`.
      key: the key, e.g. ``"threshold"``.

    Returns:
      The default value.

    Raises:
      KeyError: the section has no such key, or the key has no default.
    """
    value = section.model_fields[key].get_default(call_default_factory=True)
    if value is PydanticUndefined:
        raise KeyError(f"{section.__name__}.{key} has no default")
    return value


# ------------------------------------------------------------------------------------------------- loading
def _parse_override(item: str) -> tuple[list[str], Any]:
    """Splits ``a.b=value`` into (["a", "b"], parsed value)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, for example --set train.lr=1e-3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc.__class__.__name__})") from None
    return key.strip().split("."), value


def _apply(data: dict, path: list[str], value: Any, source: str) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: {'.'.join(path[: i + 1])} is not a section")
        node = child
    node[path[-1]] = value


def _format_error(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "<top level>"
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'"
    got = err.get("input")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{source}: {key}: {err['msg']} (got {got!r}){more}"


def _refuse_duplicate_keys(node, source: str, where: str = "") -> None:
    """Raises ConfigError for a key that appears twice in one mapping of a composed YAML document (PyYAML keeps
    the last one silently)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) and key.value != "<<" else None  # "<<": a merge
            dotted = f"{where}.{name}" if where else str(name)
            if name is not None and name in seen:
                raise ConfigError(f"{source}: key '{dotted}' appears twice (lines {seen[name]} and "
                                  f"{key.start_mark.line + 1}); keep one")
            if name is not None:
                seen[name] = key.start_mark.line + 1
            _refuse_duplicate_keys(value, source, dotted)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item, source, where)


def load_config(path: Optional[os.PathLike | str] = None, overrides: Sequence[str] = ()) -> Config:
    """Reads, overrides and validates a config.

    Args:
      path: YAML file, or None for the built-in defaults.
      overrides: ``"section.key=value"`` strings applied in order after the file.

    Returns:
      The validated, frozen :class:`Config`.

    Raises:
      ConfigError: the file is missing or not YAML, a key appears twice in one section, a key is unknown, or a
        value has the wrong type or range.
        The message names the file (or ``--set``) and the dotted key.
    """
    data: dict = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config ({exc.strerror})") from None
        try:
            _refuse_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), source)
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{source}: not valid YAML{where}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: top level must be a mapping of sections")
        data = loaded
    try:
        Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None
    for item in overrides:
        keys, value = _parse_override(item)
        _apply(data, keys, value, f"--set {item}")
        try:
            Config.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_format_error(exc, f"--set {item}")) from None
    return Config.model_validate(data)


def config_to_dict(cfg: Config) -> dict:
    """The resolved config as plain YAML-able data (every key, defaults included)."""
    return cfg.model_dump(mode="json")


def save_config(cfg: Config, path: os.PathLike | str) -> None:
    """Writes the resolved config atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
