"""Prepare a sweep once, where the Hub can be reached (a cluster's login node), so that its runs need no network:

    python -m bertcmp.prepare model=bert,modernbert data=imdb,sst2 trainer.lr=2e-5,5e-5

The arguments are the sweep's own overrides (a comma is a grid, as with -m; experiment presets' grids too), composed
by Hydra as the sweep composes them. For each distinct model and data set of the grid (runs that differ only by
learning rate or seed share them) it downloads the checkpoint's loading files into the Hugging Face cache, reads and
checks the data as a run does (into the datasets cache), and tokenizes each (data, tokenizer, length, truncation)
into bertcmp's cache, so that no job tokenizes. Then it prints what it did, what the sweep will cost in runs,
examples and tokens, the disk used, and the command that runs the sweep offline.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from huggingface_hub import constants
from omegaconf import DictConfig, OmegaConf

from bertcmp import hub
from bertcmp.errors import BertcmpError, ConfigError, DataError, ModelError, is_disk_full, summary
from bertcmp.network import answers

log = logging.getLogger("bertcmp")

# What loading a model and its tokenizer reads: the config, the weights in safetensors, the tokenizer's files; not
# other frameworks' weights, ONNX exports or training state
MODEL_FILES = ["config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json",
               "merges.txt", "spiece.model", "sentencepiece.bpe.model"]
PYTORCH_WEIGHTS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]  # for a checkpoint without safetensors
# data keys that shape batches or scoring, not what is read and split: runs differing only by them share the data
_NOT_READING = {"max_length", "truncation", "head_tokens", "padding", "pool_batches", "batch_size", "eval_batch_size",
                "num_workers", "metric"}
OFFLINE = "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1"
PROBE_SECONDS = 10.0  # how long prepare waits for the Hub's first answer


@dataclass
class Row:
    """One line of the table: what was prepared, where it lies, its size on disk, and what was done."""
    what: str
    where: str
    size: int
    state: str


@dataclass
class Plan:
    """The sweep's jobs and what they share."""
    jobs: list[tuple[list[str], DictConfig]]
    models: dict[Optional[str], DictConfig] = field(default_factory=dict)      # model.pretrained -> a job's cfg
    tokenizations: dict[str, list[DictConfig]] = field(default_factory=dict)  # a key -> the jobs' cfgs


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a not in ("-m", "--multirun")]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)  # bertcmp's own lines (tokenizing, cache hits); the libraries' warnings only
    logging.getLogger("huggingface_hub.repocard").setLevel(logging.ERROR)  # a local copy's README without YAML
    try:
        plan = plan_sweep(args)
        started = time.time()
        caches = [Path(constants.HF_HOME), Path(str(plan.jobs[0][1].cache_dir)).expanduser()]
        before = sum(_size(c) for c in caches)
        rows = fetch_models(plan)
        data_rows, prepared = tokenize_all(plan, started)
        rows += data_rows
    except BertcmpError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again; what was fetched and tokenized is kept", file=sys.stderr)
        return 130
    except Exception as err:
        if not is_disk_full(err):
            raise
        print(f"error: no space left on the disk of a cache ({summary(err)}): free some or set HF_HOME / "
              "BERTCMP_CACHE_DIR elsewhere, then run the same command again", file=sys.stderr)
        return 2
    written = sum(_size(c) for c in caches) - before
    print(report(rows, cost_table(plan, prepared), args, caches, written))
    return 0


# ---------------------------------------------------------------------------------------------- the grid


def plan_sweep(args: Sequence[str]) -> Plan:
    """Every job of the sweep these overrides make, composed by Hydra as `python -m bertcmp -m` composes it (the
    basic sweeper's grid: the config's hydra.sweeper.params, then the command line's), and what they share."""
    jobs = compose_jobs(args)
    plan = Plan(jobs)
    for _, cfg in jobs:
        plan.models.setdefault(cfg.model.pretrained, cfg)
        plan.tokenizations.setdefault(tokenization_key(cfg), []).append(cfg)
    return plan


def compose_jobs(args: Sequence[str]) -> list[tuple[list[str], DictConfig]]:
    from hydra import compose, initialize_config_dir
    # the basic sweeper's own grid expansion (Hydra has no public one): prepare's grid is the sweep's, order included
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from bertcmp.app import CONFIG_DIR
    from bertcmp.config import validate

    parser = OverridesParser.create()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3", job_name="bertcmp"):
        try:
            parsed = parser.parse_overrides(list(args))
            fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
            sweeper = compose("config", overrides=fixed, return_hydra_config=True).hydra.sweeper
            params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
            grid = BasicSweeper.split_arguments(parser.parse_overrides(params + list(args)), None)[0]
            jobs = []
            for overrides in grid:
                cfg = compose("config", overrides=overrides)
                validate(cfg)
                jobs.append((overrides, cfg))
        except (HydraException, OmegaConfBaseException) as err:
            raise ConfigError(f"the sweep does not compose: {_one_line(err)}") from None
        except ConfigError as err:
            raise ConfigError(f"{err} (in the run {' '.join(overrides)})") from None
    return jobs


def _one_line(err: BaseException) -> str:
    said = str(err).split("\nConfig search path")[0]  # Hydra's list of where it looked: not the user's mistake
    said = " ".join(line.strip() for line in said.splitlines() if line.strip())
    cause = err.__cause__
    return f"{said} ({_one_line(cause)})" if cause is not None and str(cause) not in said else said


def _reading(cfg: DictConfig) -> dict[str, Any]:
    data = OmegaConf.to_container(cfg.data, resolve=True, enum_to_str=True)
    return {key: value for key, value in data.items() if key not in _NOT_READING}


def tokenization_key(cfg: DictConfig) -> str:
    """What one tokenized copy depends on: the data as read and split, the tokenizer (a pretrained model's, or one
    trained on the data for a model from scratch), the length and the truncation."""
    m, d = cfg.model, cfg.data
    tokenizer = m.pretrained or {"scratch": str(m.name), "vocab_size": m.scratch.vocab_size}
    return json.dumps({"data": _reading(cfg), "tokenizer": tokenizer, "max_length": d.max_length,
                       "truncation": str(d.truncation), "head_tokens": d.head_tokens}, sort_keys=True)


# ---------------------------------------------------------------------------------------------- models


def fetch_models(plan: Plan) -> list[Row]:
    """Each pretrained model of the grid: every Hub id, of models and data sets, is checked (there, allowed) before
    any download, then each model's loading files are downloaded; a local directory is read as a run reads it."""
    from bertcmp.data import hub_source
    from bertcmp.model import describe_encoder

    hub_ids = [name for name in plan.models if name and hub.is_hub_id(name)]
    data_sets = list(dict.fromkeys(source for _, cfg in plan.jobs if (source := hub_source(cfg.data))))
    require_hub([*hub_ids, *data_sets])
    files = {name: files_to_fetch(name) for name in hub_ids}
    for source in data_sets:
        repo_info("dataset", "data.source", source)
    check_space(sum(size for listed in files.values() for _, size in listed))
    rows = []
    for name, cfg in plan.models.items():
        if name is None:
            continue
        if name in files:
            rows.append(download(name, [f for f, _ in files[name]]))
        else:
            rows.append(Row(f"model {_short(name)}", str(Path(name).expanduser()), _size(Path(name).expanduser()),
                            "local"))
        describe_encoder(cfg.model, cfg.data.max_length)  # its config reads, as a run reads it
    return rows


def files_to_fetch(repo_id: str) -> list[tuple[str, int]]:
    """The repository's files that loading reads, with their sizes; one line when it is not there or not allowed."""
    from fnmatch import fnmatch

    info = repo_info("model", "model.pretrained", repo_id)
    siblings = {s.rfilename: s.size or 0 for s in info.siblings or []}
    patterns = MODEL_FILES if any(f.endswith(".safetensors") for f in siblings) else MODEL_FILES + PYTORCH_WEIGHTS
    wanted = [(f, size) for f, size in siblings.items() if any(fnmatch(f, p) for p in patterns)]
    if "config.json" not in siblings:
        raise ModelError(f"model.pretrained={repo_id!r} has no config.json: it is not a transformers model")
    return wanted


def require_hub(hub_ids: Sequence[str]) -> None:
    """Prepare fetches: with Hub ids in the grid, the Hub must be used and answer (one brief probe, not every
    request's retries)."""
    if not hub_ids:
        return
    if hub.is_offline():
        raise BertcmpError(f"HF_HUB_OFFLINE is set, so the Hub is not asked for {', '.join(hub_ids)}: run prepare "
                           "without it, where the Hub can be reached (a login node)")
    if not answers(hub.endpoint(), PROBE_SECONDS):
        raise BertcmpError(f"the Hugging Face Hub ({hub.endpoint()}) did not answer within {PROBE_SECONDS:g} s, and "
                           f"prepare fetches {', '.join(hub_ids)} from it: run it where the Hub can be reached (a "
                           "login node), or set HF_ENDPOINT to a mirror")


def repo_info(kind: str, key: str, repo_id: str):
    """The Hub's record of a model or data set repository (files and sizes); one line when it is not there, not
    allowed, or the Hub cannot be asked."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    error = ModelError if kind == "model" else DataError
    try:
        return HfApi().repo_info(repo_id, repo_type=kind, files_metadata=True)
    except GatedRepoError:
        raise error(f"{key}={repo_id!r} is gated: accept its terms on its page on the Hub, then log in "
                    "(`hf auth login`, or HF_TOKEN) and run prepare again") from None
    except RepositoryNotFoundError:
        raise error(f"{key}={repo_id!r} is not a {kind} on the Hub ({hub.endpoint()}), or it is private and no token "
                    "with access was given (`hf auth login`, or HF_TOKEN)") from None
    except Exception as err:  # huggingface_hub's HTTP errors, and its HTTP client's for a connection that failed
        raise error(f"{key}={repo_id!r}: the Hub ({hub.endpoint()}) could not be asked ({summary(err)}); run prepare "
                    "where it can be reached (a login node)") from None


def check_space(needed: int) -> None:
    cache = Path(constants.HF_HUB_CACHE)
    cache.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache).free
    if needed > free:
        raise BertcmpError(f"the models need {_human(needed)} and the disk of the Hugging Face cache ({cache}) has "
                           f"{_human(free)} free: free some, or set HF_HOME to a larger disk")


def download(repo_id: str, files: list[str]) -> Row:
    """The repository's `files` into the Hugging Face cache. huggingface_hub writes each file under a name of its own
    process and renames it into place: a download that was killed is started again, not resumed, and its partial file
    (`blobs/*.incomplete`) is left behind; those untouched for 10 minutes are removed here first."""
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    remove_abandoned(Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "blobs")
    before = all(isinstance(try_to_load_from_cache(repo_id, f), str) for f in files)
    path = Path(snapshot_download(repo_id, allow_patterns=files))
    return Row(f"model {repo_id}", str(path), _size(path), "already there" if before else "fetched")


ABANDONED_AFTER_S = 600  # a partial download not written to for this long belongs to a process that is gone


def remove_abandoned(blobs: Path) -> None:
    now = time.time()
    for partial in blobs.glob("*.incomplete"):
        try:
            stat = partial.stat()
            if now - stat.st_mtime > ABANDONED_AFTER_S:
                partial.unlink()
                log.info("removed %s (%s), left by a download that was killed", partial, _human(stat.st_size))
        except FileNotFoundError:  # its download ended meanwhile
            continue


def _short(model: str) -> str:
    """A model as the table names it: a Hub id as it is, a local directory by its last two parts."""
    return model if hub.is_hub_id(model) else "/".join(Path(model).expanduser().parts[-2:])


# ---------------------------------------------------------------------------------------------- data


@dataclass
class Prepared:
    """One tokenized copy and the runs that will train on it: what the cost is counted from."""
    runs: int
    epochs: list[int]
    train_examples: int
    train_tokens: int
    data: str
    model: str


def tokenize_all(plan: Plan, started: float) -> tuple[list[Row], list[Prepared]]:
    """Read, check, split and tokenize each distinct (data, tokenizer, length, truncation) of the grid once, with the
    run's own code (bertcmp.recipe.tokenize_data): a data set a run would reject fails here. A row per data set and
    per tokenized copy."""
    from tqdm.auto import tqdm

    from bertcmp.data import cache_entry
    from bertcmp.model import describe_encoder
    from bertcmp.recipe import tokenize_data

    data_rows: dict[str, Row] = {}
    rows, prepared = [], []
    for cfgs in tqdm(list(plan.tokenizations.values()), desc="tokenizing", unit="set", disable=None):
        cfg = cfgs[0]
        reading = json.dumps(_reading(cfg), sort_keys=True)
        cached = data_cache(cfg.data)
        had = cached is not None and cached.exists()
        model = _short(cfg.model.pretrained) if cfg.model.pretrained else f"{cfg.model.name} from scratch"
        try:
            max_length = describe_encoder(cfg.model, cfg.data.max_length).max_length
            tokenized = tokenize_data(cfg, max_length)
        except BertcmpError as err:
            raise BertcmpError(f"{err} (in data={cfg.data.name} with model {model})") from None
        if reading not in data_rows:
            sizes = " / ".join(f"{len(tokenized.splits[s]):,}" for s in ("train", "valid", "test"))
            state = ("already there" if had else "fetched") if cached else "read" if cfg.data.source else "generated"
            where = cached or (Path(str(cfg.data.source)).expanduser() if state == "read" else None)
            data_rows[reading] = Row(f"data {cfg.data.name}: {sizes}, {len(tokenized.classes)} classes",
                                     str(where or cfg.data.source or "-"),
                                     _size(where) if where and where.exists() else 0, state)
            rows.append(data_rows[reading])
        entry = cache_entry(tokenized.splits, tokenized.tokenizer, max_length, cfg.cache_dir, cfg.data.truncation,
                            tokenized.head_tokens)
        fresh = entry.stat().st_mtime >= started  # renamed into place once written whole
        rows.append(Row(f"  tokenized for {model}, {tokenized.encoded['train'].lengths.max()} tokens at most",
                        str(entry), _size(entry), "tokenized" if fresh else "already there"))
        train = tokenized.encoded["train"]
        prepared.append(Prepared(len(cfgs), [c.trainer.epochs for c in cfgs], len(train), int(train.lengths.sum()),
                                 str(cfg.data.name), model))
    return rows, prepared


def data_cache(d: DictConfig) -> Optional[Path]:
    """Where the Hugging Face cache keeps a Hub data set's files; None for local or generated data."""
    from bertcmp.data import hub_source

    source = hub_source(d)
    if source is None:
        return None
    owner, _, name = source.rpartition("/")
    return Path(constants.HF_HUB_CACHE) / "--".join(["datasets", *([owner] if owner else []), name])


# ---------------------------------------------------------------------------------------------- the report


def cost_table(plan: Plan, prepared: list[Prepared]) -> list[str]:
    """What the sweep will train on: per data set and model, runs, examples and tokens per run (every epoch run to
    the end: early stopping only lowers it), then the whole sweep."""
    lines, examples, tokens = [], 0, 0
    for p in prepared:
        lines.append(f"  {p.data} x {p.model}: {_plural(p.runs, 'run')} x {p.train_examples:,} examples x "
                     f"{_epochs(p.epochs)}, {_count(p.train_tokens * max(p.epochs))} tokens per run")
        examples += sum(p.train_examples * e for e in p.epochs)
        tokens += sum(p.train_tokens * e for e in p.epochs)
    lines.append(f"  in all: {_plural(len(plan.jobs), 'run')}, {_count(examples)} training examples, {_count(tokens)} training "
                 "tokens (real tokens, before padding)")
    return lines


def report(rows: list[Row], cost: list[str], args: Sequence[str], caches: list[Path], written: int) -> str:
    width = max(len(r.what) for r in rows) if rows else 0
    table = [f"{r.what:<{width}}  {_human(r.size):>9}  {r.state:<13}  {r.where}" for r in rows]
    cached = sum(r.size for r in rows if r.state not in ("local", "read"))  # in the caches, not the user's own files
    command = " ".join(["python -m bertcmp -m", *(shlex.quote(a) for a in args)])
    return "\n".join([
        "prepared:", *("  " + line for line in table),
        "cost:", *cost,
        f"disk: {_human(max(written, 0))} written now; the sweep reads {_human(cached)} from the caches (Hugging Face: "
        f"{caches[0]}, bertcmp's: {caches[1]})",
        "run it without the network (a compute node):",
        f"  {OFFLINE} {command}",
    ])


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _epochs(epochs: list[int]) -> str:
    distinct = sorted(set(epochs))
    return _plural(distinct[0], "epoch") if len(distinct) == 1 else f"{distinct[0]}-{distinct[-1]} epochs"


def _size(path: Path) -> int:
    """Bytes on disk under `path`, each file once (a Hub snapshot's files are links to its blobs)."""
    if path.is_file():
        return path.stat().st_size
    seen, total = set(), 0
    for item in path.rglob("*"):
        if item.is_file():
            stat = item.stat()
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f}"


if __name__ == "__main__":
    sys.exit(main())
