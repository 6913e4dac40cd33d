"""The one error hierarchy of trkx-tf.

Every problem a user can cause (a bad file, a bad config key, an unknown backend, a broken checkpoint) raises a
subclass of :class:`TrkxError`. The console scripts catch exactly this type and print its message as one line,
then exit with the error's ``exit_status``: 2 (bad input) for all but :class:`TrainingError`, 3 (training
failed); anything else is a bug and keeps its traceback.
"""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, at most ``limit`` characters (its class name when it has none):
    how the errors below quote a library's exception in their one line."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:limit]


class TrkxError(Exception):
    """Base class of every documented trkx-tf error; its message is one line that says what to do."""

    #: the console scripts' exit status for this error: 2, bad input
    exit_status = 2


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


class OutputError(TrkxError):
    """An output cannot be written where asked (the path is a file, the disk is full)."""


class TrainingError(TrkxError):
    """Training failed on valid input: a non-finite loss, or an epoch with no edge of non-zero weight. Exit 3."""

    exit_status = 3


class PipelineError(TrkxError):
    """A ``trkx-pipeline`` stage failed, lacks an input, or its outputs are in the way of a rerun."""
