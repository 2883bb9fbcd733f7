"""The Hydra run folder's own files, with every secret masked before the job starts."""

from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from retrievers.infrastructure import redact
from retrievers.infrastructure.errors import NoSpaceError, no_space_message, out_of_space


class RedactRunFolder(Callback):
    """Hydra callback (``hydra.callbacks.redact`` in conf/config.yaml): Hydra writes the job's config, its own
    config and the overrides to ``<run dir>/.hydra/`` (and a sweep's ``multirun.yaml``) before the job starts;
    they are rewritten with every secret masked (``retrievers.infrastructure.redact``) before anything else happens."""

    def on_job_start(self, config: DictConfig, **kwargs) -> None:  # noqa: ARG002 - Hydra's callback signature
        hc = config.hydra
        folder = Path(str(hc.runtime.output_dir))
        try:
            if hc.output_subdir is not None:
                for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                    redact.redact_file(folder / str(hc.output_subdir) / name)
            if str(hc.mode) == "RunMode.MULTIRUN":
                redact.redact_file(Path(str(hc.sweep.dir)) / "multirun.yaml")
        except OSError as err:
            if out_of_space(err):
                raise NoSpaceError(no_space_message(err.filename or folder, "the run folder")) from None
            raise
