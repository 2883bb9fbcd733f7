"""Console entry points. Only Hydra is imported at start-up so ``--help`` and config errors are instant."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from benchmarks.errors import RbenchError
from benchmarks import resolvers  # noqa: F401 - registers ${rbench.*} before any config is composed
from benchmarks.paths import CONF_DIR as _CONF
from benchmarks.run.validate import problems
from benchmarks.tracking import layout
from retrievers.infrastructure.extras import message
from retrievers.infrastructure.progress import fmt_seconds
from retrievers.infrastructure import redact
from retrievers.infrastructure.errors import NoSpaceError, RetrieverError, no_space_message, out_of_space
from retrievers.infrastructure.safe_write import unwritable


CONF_DIR = str(_CONF)


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


def quiet_third_party(verbose: bool) -> None:
    """Third-party INFO chatter and weight-loading bars off, unless asked for."""
    import logging

    if verbose or os.environ.get("RBENCH_VERBOSE", "").lower() in ("1", "true", "yes"):
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


def _hydra_verbose() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig

        return bool(HydraConfig.get().verbose)
    except Exception:  # noqa: BLE001 - not under Hydra
        return False


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


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks.summary``): when a sweep ends, one closing table of its points — each
    point's nDCG@10 and Recall@100, best first — read back from the store, instead of leaving the reader to
    scroll through a table per point."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:  # noqa: ARG002 - Hydra's callback signature
        import time

        start = float(os.environ.get("RBENCH_SWEEP_START") or 0)
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=str(config.tracking.uri))
            exp = client.get_experiment_by_name(str(config.tracking.experiment))
            runs = client.search_runs([exp.experiment_id], filter_string=f"attributes.start_time >= {int(start * 1000)}",
                                      max_results=5000) if exp is not None and start else []
        except Exception:  # noqa: BLE001 - the summary is a courtesy; the points' own output stands
            return
        done = [r for r in runs if r.info.status == "FINISHED"]
        if not runs:
            return
        ks = [int(k) for k in config.metrics.k]
        first, second = layout.headline(ks, config.metrics.get("headline_k"))[:2]
        shown = [layout.label(first), layout.label(second)]
        done.sort(key=lambda r: -layout.contract_metrics(r.data.metrics).get(first, float("-inf")))
        lines = [f"\nrbench: sweep done in {fmt_seconds(time.time() - start)}: {len(done)} of {len(runs)} points FINISHED"
                 + (f" ({len(runs) - len(done)} FAILED or KILLED)" if len(done) < len(runs) else "")
                 + f"; {shown[0]} and {shown[1]} per point, best first:",
                 f"  {shown[0]:>9} {shown[1]:>10}  run"]
        for i, r in enumerate(done):
            m = layout.contract_metrics(r.data.metrics)
            lines.append(f"  {m.get(first, float('nan')):>9.4f} {m.get(second, float('nan')):>10.4f}  "
                         f"{r.info.run_name} ({r.info.run_id[:8]})" + ("  <- best" if i == 0 and len(done) > 1 else ""))
        print("\n".join(lines), flush=True)


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
    return no_space_message(os.environ.get("RBENCH_HOME") or os.getcwd(), "a file under")


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
    quiet_third_party(_hydra_verbose())
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

        return run_experiment(cfg).objective
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


class Terminated(KeyboardInterrupt):
    """SIGTERM (SLURM time limits, ``timeout``, ``docker stop``), raised like Ctrl-C so a run in progress is
    marked KILLED by the tracker instead of being left RUNNING."""


def _on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _redeliver_swallowed_interrupt(unraisable) -> None:
    """``sys.unraisablehook``: a signal that arrives while Python runs a finaliser or a weakref callback (a
    SQLAlchemy or MLflow object being collected) raises inside it, and Python only prints "Exception ignored"
    and goes on -- the run would finish with exit 0 as if never interrupted. Such an interrupt is raised again:
    another thread marks the signal pending 50 ms later, and its handler runs in the main thread's own code."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        import _thread
        import threading

        # from another thread, a moment later: tripped now, the handler would run inside this hook (swallowed again)
        signum = signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
        try:
            timer = threading.Timer(0.05, _thread.interrupt_main, args=(signum,))
            timer.daemon = True
            timer.start()
        except RuntimeError:  # the interpreter is shutting down: nothing is left to stop
            pass
        return
    sys.__unraisablehook__(unraisable)


def install_signal_handlers() -> None:
    """SIGTERM raises ``Terminated``, SIGINT ``KeyboardInterrupt``, and neither can be swallowed by a finaliser."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sys.unraisablehook = _redeliver_swallowed_interrupt


INFO_FLAGS = ("-h", "--help", "--hydra-help", "--info", "-i", "--version", "--cfg", "-c", "--shell-completion", "-sc",
              "--resolve", "-p", "--package")


#: launcher options -> the Hydra plugin module that provides them (the [cluster] extra)
LAUNCHER_PLUGINS = {"local_parallel": "hydra_plugins.hydra_joblib_launcher", "joblib": "hydra_plugins.hydra_joblib_launcher",
                    "submitit_local": "hydra_plugins.hydra_submitit_launcher", "submitit_slurm": "hydra_plugins.hydra_submitit_launcher",
                    "slurm": "hydra_plugins.hydra_submitit_launcher"}


#: a sweep larger than this is refused before it starts (each point is composed and checked first)
MAX_SWEEP_POINTS = 10000


def precheck(argv: list[str]) -> str | None:
    """Compose the config the command line asks for (every combination of its comma-separated sweeps) and
    validate it, before Hydra starts a job; also check that the folders the run writes (Hydra's run folder,
    the cache) can be written. Returns the error message, or None when the config is fine."""
    if any(a.split("=", 1)[0] in INFO_FLAGS for a in argv):
        return None
    overrides = [a for a in argv if not a.startswith("-")]
    multirun = any(a in ("-m", "--multirun") for a in argv)
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as err:  # noqa: BLE001 - Hydra's own parse errors
        return f"config error: {err}"
    for o in parsed:  # an optional group (experiment) silently ignores an unknown option: check every group option
        group = o.get_key_element().lstrip("+~")
        folder = Path(CONF_DIR) / group
        if group == "hydra/launcher":
            plugin = LAUNCHER_PLUGINS.get(str(o.value()) if not o.is_sweep_override() else "")
            err = message(f"hydra/launcher={o.value()}", plugin) if plugin else None
            if err:
                return f"config error: {err}"
        if "." in group or "@" in group or group.startswith("hydra") or not folder.is_dir():
            # hydra/launcher etc. also have options from installed plugins: Hydra checks those itself
            continue
        try:
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
        except Exception:  # noqa: BLE001
            continue
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        for v in values:
            if v is not None and str(v) != "null" and str(v) not in options:
                return (f"config error: no option {str(v)!r} in config group {group!r}; options: {', '.join(options)} "
                        f"(files in conf/{group}/)")
    if multirun:  # a preset's own sweep (hydra.sweeper.params): its points count and are checked like the command line's
        try:
            with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
                base = compose(config_name="config", overrides=[o.input_line for o in parsed if not o.is_sweep_override()],
                               return_hydra_config=True)
            params = dict(base.hydra.sweeper.get("params") or {})
        except Exception:  # noqa: BLE001 - a broken config: the checks below report it
            params = {}
        given = {o.get_key_element().lstrip("+~") for o in parsed}
        preset = [f"{k}={v}" for k, v in params.items() if str(k) not in given]
        if preset:
            try:
                parsed = [*parsed, *OverridesParser.create().parse_overrides(preset)]
            except Exception as err:  # noqa: BLE001
                return f"config error: hydra.sweeper.params: {err}"
    combos: list[list[str]] = [[]]
    swept: set[str] = set()
    total = 1
    for o in parsed:
        if multirun and o.is_sweep_override():
            try:
                values = [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
            except Exception:  # noqa: BLE001 - interval/range sweeps of a sweeper plugin: check the first value only
                values = [o.input_line]
            swept.update(values)
            total *= len(values)
            if total > MAX_SWEEP_POINTS:
                return (f"config error: the sweep has {total} points or more, over {MAX_SWEEP_POINTS}; split it into "
                        "several commands (each point is checked before the first runs)")
            combos = [c + [v] for c in combos for v in values]
        else:
            combos = [c + [o.input_line] for c in combos]
    folders: dict[str, str] = {}
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        shown = len(combos) > 64
        if shown:
            print(f"rbench: checking the {len(combos)} points of the sweep before the first runs", file=sys.stderr, flush=True)
        for i, combo in enumerate(combos):
            try:
                cfg = compose(config_name="config", overrides=combo, return_hydra_config=i == 0)
            except Exception as err:  # noqa: BLE001 - unknown option, key typo, bad override: Hydra's message
                hint = _key_hint(combo, compose)
                if hint:  # a key that does not exist: name the right one, not Hydra's "use +key=value" advice
                    return f"config error: {hint.strip()}"
                return f"config error: {str(err).strip()}"
            if i == 0:
                from omegaconf import open_dict

                try:
                    hc = cfg.hydra.sweep if multirun else cfg.hydra.run
                    folders["hydra.sweep.dir" if multirun else "hydra.run.dir"] = str(hc.dir)
                except Exception:  # noqa: BLE001 - an interpolation only Hydra's job can resolve: Hydra checks it
                    pass
                with open_dict(cfg):
                    del cfg["hydra"]
            where = f" (sweep point {i + 1} of {len(combos)}: {' '.join(c for c in combo if c in swept)})" if swept else ""
            found = problems(cfg)
            if found:
                return "config error" + where + ":\n  " + "\n  ".join(found)
            try:
                if cfg.get("cache", {}).get("mode") != "off":
                    folders.setdefault(f"cache.dir={cfg.cache.dir}", str(cfg.cache.dir))
            except Exception:  # noqa: BLE001 - a config without these keys: nothing to check
                pass
    for key, folder in folders.items():
        why = unwritable(folder)
        if why:
            name = key.split("=", 1)[0]
            given = any(a.split("=", 1)[0].lstrip("+") == name for a in overrides)
            env = " (RBENCH_HOME)" if name.startswith("hydra") and os.environ.get("RBENCH_HOME") and not given else ""
            return f"config error: {name}{env}: {folder} cannot be written: {why} -- nothing was computed"
    if multirun:  # for the sweep's progress lines (read by every point, also in launcher subprocesses)
        import time

        os.environ["RBENCH_SWEEP_TOTAL"] = str(total) if swept else os.environ.get("RBENCH_SWEEP_TOTAL", "")
        os.environ["RBENCH_SWEEP_START"] = str(time.time())  # this sweep's own start (the closing table reads runs since)
    return None


def sweep_progress() -> str | None:
    """``rbench: sweep point 3/8 (1m20s so far, ETA 2m13s)`` for a point of a multirun; None otherwise."""
    import time

    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return None
        num = int(hc.job.num)
    except Exception:  # noqa: BLE001 - not under Hydra
        return None
    total = os.environ.get("RBENCH_SWEEP_TOTAL") or ""
    start = float(os.environ.get("RBENCH_SWEEP_START") or time.time())
    elapsed = time.time() - start
    eta = ""
    if total.isdigit() and num > 0:
        eta = f", ETA {fmt_seconds(elapsed / num * (int(total) - num))}"
    return f"rbench: sweep point {num + 1}/{total or '?'} ({fmt_seconds(elapsed)} so far{eta})"


def _key_hint(overrides: list[str], compose) -> str:  # noqa: ANN001 - hydra.compose
    """For an override of a key that does not exist: the closest existing key and the keys allowed there."""
    import difflib

    try:
        base = compose(config_name="config", overrides=[o for o in overrides if "=" in o and "." not in o.split("=")[0]])
    except Exception:  # noqa: BLE001
        return ""
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if "." not in key or o.startswith(("+", "~")):
            continue
        parent, leaf = key.rsplit(".", 1)
        node = base
        for part in parent.split("."):
            node = node.get(part) if hasattr(node, "get") else None
        if hasattr(node, "keys") and leaf not in node:
            keys = sorted(str(k) for k in node.keys())
            close = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.4)
            return (f"\n{key}: no such key" + (f"; did you mean {parent}.{close[0]}?" if close else ".")
                    + f" Keys of {parent}: {', '.join(keys)}")
    return ""


def run() -> None:
    """Console entry ``rbench``: the config is composed and validated first (errors: one message, exit 2, in
    well under a second); SIGTERM and Ctrl-C end a run in progress as KILLED with one line and exit 143 / 130."""
    import logging

    redact.install()  # every line printed or logged from here on has its secrets masked
    logging.raiseExceptions = False  # a log line lost to a full disk is not a traceback
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
        code = 143 if isinstance(err, Terminated) else 130
        what = "terminated (SIGTERM)" if code == 143 else "interrupted (Ctrl-C)"
        run_id = getattr(err, "rbench_killed_run", None)  # set by the tracker that marked its run
        if run_id:
            print(f"rbench: {what}; MLflow run {run_id} is marked KILLED; finished encoder shards stay in the cache: "
                  "the same command resumes from them", file=sys.stderr)
        else:
            print(f"rbench: {what}; the run in progress (if any) is marked KILLED", file=sys.stderr)
        sys.exit(code)


def _tool(prog: str, entry) -> None:  # noqa: ANN001 - a main(argv) -> int
    """The report, audit and generate tools: secrets masked in what they print, errors a user can act on and a
    full disk as one line with exit 2."""
    redact.install()
    try:
        code = entry()
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
