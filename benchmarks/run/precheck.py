"""Before Hydra starts a job: every point the command line asks for composed and validated, the folders it writes
checked; an error is one message naming the key, in well under a second."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from benchmarks import resolvers  # noqa: F401 - registers ${rbench.*} before any config is composed
from benchmarks.paths import CONF_DIR as _CONF, location
from benchmarks.run.validate import problems
from retrievers.infrastructure.extras import message
from retrievers.infrastructure.safe_write import unwritable

CONF_DIR = str(_CONF)

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
        group = o.get_key_element().lstrip("+~").split("@", 1)[0]  # encoder@retriever.encoder: the encoder group
        folder = Path(CONF_DIR) / group
        if group == "hydra/launcher":
            plugin = LAUNCHER_PLUGINS.get(str(o.value()) if not o.is_sweep_override() else "")
            err = message(f"hydra/launcher={o.value()}", plugin) if plugin else None
            if err:
                return f"config error: {err}"
        if "." in group or group.startswith("hydra") or not folder.is_dir():
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

                replaced = _replaced_node(combo, compose, cfg)
                if replaced:
                    return f"config error: {replaced}"

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
            env = " (RBENCH_HOME)" if name.startswith("hydra") and location("home") != "." and not given else ""
            return f"config error: {name}{env}: {folder} cannot be written: {why} -- nothing was computed"
    if multirun:  # for the sweep's progress lines (read by every point, also in launcher subprocesses)
        import time

        os.environ["RBENCH_SWEEP_TOTAL"] = str(total) if swept else os.environ.get("RBENCH_SWEEP_TOTAL", "")
        os.environ["RBENCH_SWEEP_START"] = str(time.time())  # this sweep's own start (the closing table reads runs since)
    return None


def _groups_only(overrides: list[str]) -> list[str]:
    """The overrides that choose config group options (``retriever=dense``, ``encoder@retriever.encoder=static``),
    without the ones that set keys: the config the keys are looked up in."""
    return [o for o in overrides if "=" in o and "." not in o.split("=")[0].split("@")[0]]


def _node_at(cfg, dotted: str):  # noqa: ANN001, ANN202 - a DictConfig and what it holds there
    node = cfg
    for part in dotted.split("."):
        node = node.get(part) if hasattr(node, "get") else None
    return node


def _key_hint(overrides: list[str], compose) -> str:  # noqa: ANN001 - hydra.compose
    """For an override of a key that does not exist: where it is (a key one node down: ``retriever.model`` is
    ``retriever.encoder.model``; ``retriever.encoder_backend`` is ``retriever.encoder.backend``), else the closest
    existing key, and the keys allowed there."""
    import difflib

    try:
        base = compose(config_name="config", overrides=_groups_only(overrides))
    except Exception:  # noqa: BLE001
        return ""
    for o in overrides:
        key, _, value = o.partition("=")
        key = key.lstrip("+~")
        if "." not in key or o.startswith(("+", "~")):
            continue
        parent, leaf = key.rsplit(".", 1)
        node = _node_at(base, parent)
        if hasattr(node, "keys") and leaf not in node:
            keys = sorted(str(k) for k in node.keys())
            below = [f"{parent}.{k}.{rest}" for k in keys for rest in (leaf, leaf[len(k) + 1:] if leaf.startswith(f"{k}_") else "")
                     if rest and hasattr(node.get(k), "keys") and rest in node.get(k)]
            if below:
                return f"\n{key}: no such key; it is {below[0]} ({below[0]}={value})"
            close = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.4)
            return (f"\n{key}: no such key" + (f"; did you mean {parent}.{close[0]}?" if close else ".")
                    + f" Keys of {parent}: {', '.join(keys)}")
    return ""


def _replaced_node(overrides: list[str], compose, cfg) -> str:  # noqa: ANN001 - hydra.compose and its config
    """An override that replaces a node of settings with one value (``retriever.index=hnsw`` where ``retriever.index``
    holds ``kind``, ``hnsw_m``, ...): Hydra takes it, and nothing would read the node's settings. The message names
    the key to set instead, or the group option to choose when the node is a config group's (``retriever.encoder``:
    ``encoder@retriever.encoder=static``)."""
    candidates = [o for o in overrides if "." in o.partition("=")[0] and not o.startswith(("+", "~"))
                  and not o.partition("=")[2].startswith(("{", "null"))]
    if not candidates:  # nothing could replace a node: no second composition on a plain run's start
        return ""
    try:
        base = compose(config_name="config", overrides=_groups_only(overrides))
    except Exception:  # noqa: BLE001 - Hydra reports a broken config itself
        return ""
    choices = dict(cfg.hydra.runtime.choices) if "hydra" in cfg else {}
    for o in candidates:
        key, _, value = o.partition("=")
        was = _node_at(base, key)
        if not hasattr(was, "keys"):
            continue
        group = next((g.split("@")[0] for g in choices if g.endswith(f"@{key}")), None)
        if group:
            options = sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))
            return (f"{key}: a node of the {group} group's settings, not one value: choose another option with "
                    f"{group}@{key}=<{'|'.join(options)}>, or set one of its keys ({key}.<key>)")
        keys = [str(k) for k in was.keys() if not str(k).startswith("_")]
        return (f"{key}: a node of settings ({', '.join(keys)}), not one value: set one of its keys, e.g. "
                f"{key}.{keys[0]}={value}" if keys else f"{key}: a node of settings, not one value")
    return ""
