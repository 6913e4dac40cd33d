"""The one error hierarchy of trkx-tf.

Every problem a user can cause (a bad file, a bad config key, an unknown backend, a broken checkpoint) raises a
subclass of :class:`TrkxError`. The console scripts catch exactly this type and print its message as one line,
then exit with status 2; anything else is a bug and keeps its traceback.
"""


class TrkxError(Exception):
    """Base class of every documented trkx-tf error; its message is one line that says what to do."""


class ConfigError(TrkxError):
    """A configuration file or ``--set`` override is invalid (unknown key, wrong type, unreadable YAML)."""


class DataError(TrkxError):
    """An input event (TrackML CSV) is missing, malformed or inconsistent."""


class ShardError(TrkxError):
    """An HDF5 graph shard is corrupt, of another schema version, or does not match its checksum."""


class CheckpointError(TrkxError):
    """A checkpoint is missing or does not fit the model being restored."""


class BackendError(TrkxError):
    """A distributed backend is unknown or cannot be initialised."""


class PipelineError(TrkxError):
    """A ``trkx-pipeline`` stage failed, lacks an input, or its outputs are in the way of a rerun."""
