"""What a run prints: the project's own INFO lines, every warning, and no third-party chatter unless asked for
(``hydra.verbose=true`` or ``RBENCH_VERBOSE=1``)."""

from __future__ import annotations

import logging
import os

#: loggers of libraries whose INFO lines ("Creating initial MLflow database tables", "Loading SentenceTransformer
#: model", "Use pytorch device") are noise in a run's output; shown with hydra.verbose=true or RBENCH_VERBOSE=1
THIRD_PARTY = ("mlflow", "alembic", "sentence_transformers", "transformers", "huggingface_hub", "datasets", "faiss",
               "numba", "urllib3", "filelock", "bm25s", "httpx", "git", "model2vec")

#: loggers whose INFO lines a run prints; any other library's INFO/DEBUG lines are dropped at the handlers too
#: (a library not named above, or one that renames its logger between versions: model2vec 0.7's ``hf_utils``)
OWN_LOGGERS = ("benchmarks", "retrievers", "chunkers", "rbench", "__main__", "hydra")


class _OwnInfoOnly:
    """A handler filter: warnings from anyone, INFO and below only from the project's own loggers."""

    def filter(self, record) -> bool:  # noqa: ANN001 - logging.LogRecord
        return record.levelno >= 30 or record.name.split(".")[0] in OWN_LOGGERS


#: whether this process shows third-party chatter (set by :func:`quiet_third_party`; read by the tracking helper)
VERBOSE = {"on": False}


def verbose_wanted(verbose: bool = False) -> bool:
    return verbose or os.environ.get("RBENCH_VERBOSE", "").lower() in ("1", "true", "yes")


def quiet_third_party(verbose: bool) -> None:
    """Third-party INFO chatter and weight-loading bars off, unless asked for."""
    VERBOSE["on"] = verbose_wanted(verbose)
    if VERBOSE["on"]:
        for name in ("retrievers", "benchmarks", "chunkers"):  # the project's own debug lines (cache hits, ...)
            logging.getLogger(name).setLevel(logging.DEBUG)
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" bars
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:  # Hydra's console and job-log handlers
        if not any(isinstance(f, _OwnInfoOnly) for f in handler.filters):
            handler.addFilter(_OwnInfoOnly())
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a damaged PDF is reported once, by the files reader


def hydra_verbose() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig

        return bool(HydraConfig.get().verbose)
    except Exception:  # noqa: BLE001 - not under Hydra
        return False
