"""Progress display for long work: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from iomt.environment import Environment


class PhaseProgress:
    """One progress bar per phase (training epochs, federated rounds); plain lines off a tty."""

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> PhaseProgress:
        if self._env.interactive:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(file=self._env.stderr),
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, phase: str, step: int, total: int, values: dict[str, float]) -> None:
        """Advance `phase` to `step` of `total`, showing the latest numbers (the trainer's
        progress callback)."""
        status = "  ".join(f"{k} {v:.3f}" for k, v in values.items() if isinstance(v, float))
        self.show(phase, step, total, status)

    def show(self, phase: str, step: int, total: int, status: str) -> None:
        """Advance `phase` to `step` of `total` with a ready-made status text."""
        if self._progress is None:
            self._env.warn(f"{phase} {step}/{total}  {status}".rstrip())
            return
        if phase not in self._tasks:
            self._tasks[phase] = self._progress.add_task(phase, total=total, status="")
        self._progress.update(self._tasks[phase], completed=step, total=total, status=status)
