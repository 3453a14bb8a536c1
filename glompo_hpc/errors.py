"""Exceptions that users can meet, each naming the bad value it is about."""

__all__ = ("GloMPOError", "ConfigurationError", "JobFileError", "CheckpointError", "TaskNotRestored",
           "OptimizerStopped")


class GloMPOError(Exception):
    """Base class of every error raised by glompo_hpc itself."""


class ConfigurationError(GloMPOError, ValueError):
    """A setting given to the manager or a component is invalid."""


class JobFileError(ConfigurationError):
    """A job file is invalid. ``key_path`` names where, e.g. ``stoppers[0].calls``."""

    def __init__(self, key_path: str, message: str):
        self.key_path = key_path
        super().__init__(f"{key_path}: {message}" if key_path else message)


class CheckpointError(GloMPOError):
    """A checkpoint could not be written or read."""


class TaskNotRestored(CheckpointError):
    """A checkpoint's task cannot be rebuilt from the checkpoint alone: the caller must supply it.

    ``problem`` says why (without advice, which differs between the Python API and the command line).
    """

    def __init__(self, problem: str, advice: str):
        self.problem = problem
        super().__init__(f"{problem}: {advice}")


class OptimizerStopped(Exception):
    """Raised inside a child optimizer's evaluation to unwind it after the manager asked it to stop.

    It derives from Exception (not GloMPOError) on purpose: third-party optimizer loops that catch
    Exception will still end, and the child host recognises it and reports a clean stop.
    """


class UserError(Exception):
    """A mistake of the command line's user with a ready message: ``glompo-hpc`` prints it as one
    line ``glompo-hpc: error: ...`` and exits 2."""


class OtherRankError(UserError):
    """An error every MPI rank meets alike: rank 0 prints it, the others exit 2 without repeating it."""
