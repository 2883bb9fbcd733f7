"""Console entry points: they parse the command line and dispatch. Only Hydra is imported at start-up so ``--help``
and config errors are instant. The pre-checks (``run/precheck.py``), signals (``run/signals.py``), the sweep's
progress and closing table (``run/sweep.py``), the run folder's redaction (``run/run_folder.py``), the log filters
(``logs.py``) and the config resolvers (``resolvers.py``) live in the modules of their concern."""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from benchmarks.errors import RbenchError
from benchmarks.logs import hydra_verbose, quiet_third_party
from benchmarks.paths import location
from benchmarks.run.precheck import CONF_DIR, precheck
from benchmarks.run.signals import Terminated, install_signal_handlers
from benchmarks.run.sweep import note_point, sweep_progress
from benchmarks.tracking import helper
from retrievers.infrastructure import redact
from retrievers.infrastructure.errors import NoSpaceError, RetrieverError, no_space_message, out_of_space


def _fail(prog: str, message: str, code: int = 2) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def _full_disk_message(err: BaseException) -> str | None:
    """One line for a full device anywhere below an entry point (the path when known), else None."""
    if isinstance(err, NoSpaceError):
        return str(err)
    if not out_of_space(err):
        return None

    path = getattr(err, "filename", None)
    if path:
        return no_space_message(path)
    return no_space_message(os.path.abspath(location("home")), "a file under")


def _fail_if_mlflow(prog: str, err: Exception) -> None:
    """The tracking server refused a request (an MLflow error): its answer on one line and exit 2 (the console is
    redacted, so credentials it echoes are masked); anything else is left to the caller."""
    if type(err).__module__.startswith("mlflow") and _full_disk_message(err) is None:
        _fail(prog, f"MLflow: {' '.join(str(err).split())[:600]}")


def _fail_if_full_disk(prog: str, err: Exception) -> None:
    """A full device is one line and exit 2; anything else is raised again."""
    full = _full_disk_message(err)
    if full is None:
        raise err
    _fail(prog, full)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    """``rbench [overrides...]`` runs one experiment point; ``rbench -m ...`` sweeps."""
    from hydra.errors import InstantiationException

    redact.install()  # also in launcher worker processes
    quiet_third_party(hydra_verbose())
    line = sweep_progress()
    if line:
        print(line, file=sys.stderr, flush=True)
    try:
        if cfg.get("story"):
            from benchmarks.story import run_story

            return run_story(cfg)
        if cfg.get("beir_full"):
            from benchmarks.beir_full import run_beir_full

            return run_beir_full(cfg)
        from benchmarks.run.runner import run_experiment

        result = run_experiment(cfg)
        note_point(result.run_id, skipped=result.skipped)  # the sweep's closing table lists it
        return result.objective
    except (RbenchError, RetrieverError) as err:
        _fail("rbench", str(err))
    except InstantiationException as err:
        cause = err.__cause__ or err
        full = _full_disk_message(cause)
        print(f"rbench: {'error: ' + full if full else f'config error: {cause}'}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        _fail_if_mlflow("rbench", err)
        _fail_if_full_disk("rbench", err)


def run() -> None:
    """Console entry ``rbench``: the config is composed and validated first (errors: one message, exit 2, in
    well under a second); SIGTERM and Ctrl-C end a run in progress as KILLED with one line and exit 143 / 130."""
    import logging

    redact.install()  # every line printed or logged from here on has its secrets masked
    logging.raiseExceptions = False  # a log line lost to a full disk is not a traceback
    helper.prestart()  # MLflow imported and its store opened beside the run, not before it
    install_signal_handlers()
    # Hydra's own errors raised, not printed with a trimmed traceback: a full disk while Hydra writes the run
    # folder becomes one line below
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        error = precheck(sys.argv[1:])
        if error:
            print(f"rbench: {error}", file=sys.stderr)
            sys.exit(2)
        main()
    except Exception as err:
        _fail_if_full_disk("rbench", err)
    except KeyboardInterrupt as err:
        helper.stop()
        code = 143 if isinstance(err, Terminated) else 130
        what = "terminated (SIGTERM)" if code == 143 else "interrupted (Ctrl-C)"
        run_id = getattr(err, "rbench_killed_run", None)  # set by the tracker that marked its run
        resume = getattr(err, "rbench_resume", None)  # set by an encode that was cut: what the next run finds
        if run_id:
            print(f"rbench: {what}; MLflow run {run_id} is marked KILLED" + (f"; {resume}" if resume else ""),
                  file=sys.stderr)
        else:
            print(f"rbench: {what}; the run in progress (if any) is marked KILLED" + (f"; {resume}" if resume else ""),
                  file=sys.stderr)
        sys.exit(code)
    finally:
        helper.stop()


def _tool(prog: str, entry) -> None:  # noqa: ANN001 - a main(argv) -> int
    """The report, audit and generate tools: secrets masked in what they print, errors a user can act on and a
    full disk as one line with exit 2."""
    redact.install()
    try:
        code = entry()
    except BrokenPipeError:  # the reader of a pipe stopped (``| head``): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except (RbenchError, RetrieverError) as err:
        _fail(prog, str(err))
    except Exception as err:
        _fail_if_mlflow(prog, err)
        _fail_if_full_disk(prog, err)
    sys.exit(code)


def report() -> None:
    """``rbench-report``: compare runs read back from MLflow (see ``benchmarks.report``)."""
    from benchmarks.report import main as report_main

    _tool("rbench-report", report_main)


def audit() -> None:
    """``rbench-audit``: classify each failed query of a run into its cause (see ``benchmarks.audit``)."""
    from benchmarks.audit import main as audit_main

    quiet_third_party(False)
    _tool("rbench-audit", audit_main)


def generate() -> None:
    """``rbench-generate``: questions with verbatim evidence for a corpus that has none (see ``benchmarks.generate``)."""
    from benchmarks.generate import main as generate_main

    quiet_third_party(False)
    _tool("rbench-generate", generate_main)
