"""What a comparison groups runs by: tasks (what fixes the test items: runs of two tasks never meet) and, within a
task, encoders (a checkpoint, or a shape built from scratch: the thing compared; its family describes it)."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import PurePath
from typing import Sequence

from bertcmp.runs import Run

FAMILY_NAMES = {"bert": "BERT", "modernbert": "ModernBERT", "roberta": "RoBERTa", "xlm-roberta": "XLM-R",
                "deberta": "DeBERTa", "deberta-v2": "DeBERTa-v2", "distilbert": "DistilBERT", "electra": "ELECTRA",
                "albert": "ALBERT", "mpnet": "MPNet", "camembert": "CamemBERT"}


def family_name(model: str) -> str:
    """A family as people write it (ModernBERT, RoBERTa); an unknown model_type as it is."""
    return FAMILY_NAMES.get(model, model)


def by_task(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """The runs of each task (keyed by Run.data_key), in the order the tasks first appear."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.data_key].append(run)
    return dict(groups)


def task_names(keys: Sequence[str]) -> dict[str, str]:
    """Each task by its data name; tasks that share a name are told apart by the keys in which they differ
    (`imdb (split=official)`, a source by its last part)."""
    tasks = {key: json.loads(key) for key in keys}
    names = {}
    for key, task in tasks.items():
        namesakes = [t for t in tasks.values() if t["name"] == task["name"]]
        differing = [k for k in sorted(task) if k != "name" and len({json.dumps(t[k]) for t in namesakes}) > 1]
        parts = [f"{k}={_short(task[k]) if k == 'source' else task[k]}" for k in differing]
        names[key] = str(task["name"] or "unnamed task") + (f" ({', '.join(parts)})" if parts else "")
    return names


def _short(source) -> str:
    return PurePath(str(source)).name if source else str(source)


def encoder_names(runs: Sequence[Run]) -> dict[str, str]:
    """A name for each encoder (keyed by Run.encoder_key): its family (BERT, ModernBERT) when the runs hold one
    encoder of that family, else its checkpoint's shortest distinguishing path suffix (`roberta-large`,
    `b/model` beside `a/model`), or the shape it was built in from scratch (`BERT scratch 2x64`)."""
    encoders = {run.encoder_key: run for run in runs}
    per_family: dict[str, list[str]] = defaultdict(list)
    for key, run in encoders.items():
        per_family[run.model].append(key)
    names = {keys[0]: family_name(model) for model, keys in per_family.items() if len(keys) == 1}
    several = [key for keys in per_family.values() if len(keys) > 1 for key in keys]
    checkpoints = [key for key in several if encoders[key].pretrained]
    names |= _shortest_suffixes({key: encoders[key].pretrained for key in checkpoints})
    for key in several:
        if key not in names:
            names[key] = f"{family_name(encoders[key].model)} scratch {scratch_shape(encoders[key].scratch)}"
    counts = defaultdict(int)
    for name in names.values():
        counts[name] += 1
    return {key: name if counts[name] == 1 else f"{name} [{_digest(key)}]" for key, name in names.items()}


def scratch_shape(sizes) -> str:
    """layers x hidden (x heads, FFN, vocabulary where they are not the tiny default), `base` for a null size."""
    sizes = sizes if isinstance(sizes, dict) else {}
    show = lambda k: "base" if sizes.get(k) is None else str(sizes[k])  # noqa: E731
    if all(sizes.get(k) is None for k in sizes):
        return "base"
    return f"{show('num_layers')}x{show('hidden_size')}"


def _shortest_suffixes(paths: dict[str, str]) -> dict[str, str]:
    """Each path by the fewest last parts that no other path ends in."""
    parts = {key: PurePath(path).parts or (path,) for key, path in paths.items()}
    names = {}
    for key, mine in parts.items():
        for length in range(1, len(mine) + 1):
            suffix = mine[-length:]
            if all(other[-length:] != suffix for k, other in parts.items() if k != key):
                break
        names[key] = "/".join(suffix)
    return names


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:6]
