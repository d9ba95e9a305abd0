"""Behaviour shared by the algorithms of this package, on top of SB3's ``OffPolicyAlgorithm``."""

from __future__ import annotations

import io
import os
import pathlib
from collections.abc import Iterable

from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm


def _target_path(path: str | pathlib.Path, suffix: str) -> pathlib.Path:
    # The file name SB3 itself would write to: the suffix is added when the path has none.
    path = pathlib.Path(path)
    return path if path.suffix else path.with_suffix(f".{suffix}")


class _AtomicWrite:
    """Write to a temporary file next to ``path`` and rename it over ``path`` only once the write has finished.

    A crash or interruption in the middle of a save therefore leaves the previous file intact.
    """

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")

    def __enter__(self) -> io.BufferedWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed in __exit__
        return self.file

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
        finally:
            self.file.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


class WorldModelAlgorithm(OffPolicyAlgorithm):
    """SB3 off-policy algorithm whose ``save`` and ``save_replay_buffer`` never leave a half-written file."""

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(path, (str, pathlib.Path)):
            return super().save(path, exclude, include)
        with _AtomicWrite(_target_path(path, "zip")) as file:
            super().save(file, exclude, include)

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        if not isinstance(path, (str, pathlib.Path)):
            return super().save_replay_buffer(path)
        with _AtomicWrite(_target_path(path, "pkl")) as file:
            super().save_replay_buffer(file)
