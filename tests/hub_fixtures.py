"""Tiny copies of the benchmark tasks' Hub repositories, each in its real layout: the files where the repository
keeps them, the real column and split names, labels encoded as the real set encodes them (a ClassLabel with its
names in its order, BoolQ's bool, -1 for GLUE's hidden test labels and IMDB's unsupervised split), and, where the
real repository has one, a README whose `configs:` block maps configurations to files. The texts are generated:
each class has cue words, so a tiny model learns something in one epoch.

One directory per data preset, named as the preset (data.name), so that

    python -m tests.hub_fixtures                      # writes outputs/fixtures/<preset>/ for every preset
    python -m bertcmp -m experiment=benchmark_smoke   # the benchmark suite on them, offline

Where each layout comes from (the Hub cannot be reached from here; the tests read the same table): the Hugging Face
dataset cards as mirrored in TFDS's community catalog (tensorflow/datasets docs/community_catalog/huggingface/
<name>.md: columns, label names and order, splits and sizes) and the repositories' file listings and README commits
on huggingface.co (file paths, `configs:` blocks).
"""

from __future__ import annotations

import random
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

GLUE_SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Repo:
    """One preset's Hub repository as far as bertcmp reads it."""
    hub_id: str
    texts: tuple[str, ...]                 # the text column(s): one, or the two of a pair task
    label: str                             # the label column
    classes: Optional[tuple[str, ...]]     # a ClassLabel's names in order; None: a bool column (BoolQ's answer)
    files: dict[str, str]                  # split -> file in the repository
    hidden: tuple[str, ...] = ()           # splits whose every label is -1
    configs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # README configs block: name -> its splits
    idx: bool = False                      # GLUE's int32 `idx` column


def _glue(config: str, texts: tuple[str, ...], classes: tuple[str, ...],
          splits: tuple[str, ...] = GLUE_SPLITS) -> Repo:
    """nyu-mll/glue: one folder per configuration, <config>/<split>-00000-of-00001.parquet; test labels -1."""
    return Repo("nyu-mll/glue", texts, "label", classes,
                {s: f"{config}/{s}-00000-of-00001.parquet" for s in splits},
                hidden=tuple(s for s in splits if s.startswith("test")), configs={config: splits}, idx=True)


def _flat(hub_id: str, folder: str, texts: tuple[str, ...], label: str, classes: Optional[tuple[str, ...]],
          splits: tuple[str, ...], configs: Optional[dict[str, tuple[str, ...]]] = None) -> Repo:
    return Repo(hub_id, texts, label, classes, {s: f"{folder}/{s}-00000-of-00001.parquet" for s in splits},
                configs=configs or {})


SENTIMENT = ("negative", "positive")
ENTAILMENT = ("entailment", "not_entailment")

REPOS: dict[str, Repo] = {
    # stanfordnlp/imdb: plain_text/{train,test,unsupervised}-*.parquet; unsupervised is all -1
    "imdb": Repo("stanfordnlp/imdb", ("text",), "label", ("neg", "pos"),
                 {s: f"plain_text/{s}-00000-of-00001.parquet" for s in ("train", "test", "unsupervised")},
                 hidden=("unsupervised",), configs={"plain_text": ("train", "test", "unsupervised")}),
    "sst2": _glue("sst2", ("sentence",), SENTIMENT),
    # cornell-movie-review-data/rotten_tomatoes: train.parquet, validation.parquet, test.parquet at the root
    "rotten_tomatoes": Repo("cornell-movie-review-data/rotten_tomatoes", ("text",), "label", ("neg", "pos"),
                            {s: f"{s}.parquet" for s in GLUE_SPLITS}),
    "ag_news": _flat("fancyzhx/ag_news", "data", ("text",), "label", ("World", "Sports", "Business", "Sci/Tech"),
                     ("train", "test"), {"default": ("train", "test")}),
    "yelp_polarity": _flat("fancyzhx/yelp_polarity", "plain_text", ("text",), "label", ("1", "2"),
                           ("train", "test"), {"plain_text": ("train", "test")}),
    # dair-ai/emotion: configurations `split` (16k/2k/2k, the default) and `unsplit` (train only, 417k)
    "emotion": Repo("dair-ai/emotion", ("text",), "label",
                    ("sadness", "joy", "love", "anger", "fear", "surprise"),
                    {**{s: f"split/{s}-00000-of-00001.parquet" for s in GLUE_SPLITS},
                     "unsplit:train": "unsplit/train-00000-of-00001.parquet"},
                    configs={"split": GLUE_SPLITS, "unsplit": ("train",)}),
    "cola": _glue("cola", ("sentence",), ("unacceptable", "acceptable")),
    "mnli": _glue("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"),
                  ("train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched")),
    "qnli": _glue("qnli", ("question", "sentence"), ENTAILMENT),
    "rte": _glue("rte", ("sentence1", "sentence2"), ENTAILMENT),
    "mrpc": _glue("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent")),
    "qqp": _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate")),
    # google/boolq: question, answer (bool), passage; train and validation only
    "boolq": _flat("google/boolq", "data", ("question", "passage"), "answer", None, ("train", "validation"),
                   {"default": ("train", "validation")}),
}

FILLER = ("the", "a", "story", "report", "people", "today", "city", "about", "game", "market", "new", "old",
          "question", "team", "said", "film", "water", "year", "house", "road", "music", "light", "friend")


def _text(rng: random.Random, cue: str, words: int = 8) -> str:
    picked = [rng.choice(FILLER) for _ in range(words)] + [cue, cue]
    rng.shuffle(picked)
    return " ".join(picked)


def _split_rows(repo: Repo, split: str, n: int, seed: int) -> dict[str, list]:
    """n rows of one split: the first text carries its class's cue word; a second text shares some words."""
    rng = random.Random(seed)
    k = len(repo.classes) if repo.classes else 2
    labels = [i % k for i in range(n)]
    rng.shuffle(labels)
    first = [f"{_text(rng, f'cue{y}')} {split} {i}" for i, y in enumerate(labels)]
    rows: dict[str, list] = {repo.texts[0]: first}
    if len(repo.texts) == 2:
        rows[repo.texts[1]] = [f"{_text(rng, rng.choice(FILLER))} {i}" for i in range(n)]
    hidden = split in repo.hidden
    rows[repo.label] = [-1 if hidden else (bool(y) if repo.classes is None else y) for y in labels]
    if repo.idx:
        rows["idx"] = list(range(n))
    return rows


def _features(repo: Repo):
    from datasets import ClassLabel, Features, Value

    features = {name: Value("string") for name in repo.texts}
    features[repo.label] = Value("bool") if repo.classes is None else ClassLabel(names=list(repo.classes))
    if repo.idx:
        features["idx"] = Value("int32")
    return Features(features)


def _readme(name: str, repo: Repo) -> str:
    lines = ["---", f"pretty_name: {name}"]
    if repo.configs:
        lines.append("configs:")
        for i, (config, splits) in enumerate(repo.configs.items()):
            lines += [f"- config_name: {config}", "  data_files:"]
            for split in splits:
                path = repo.files.get(f"{config}:{split}", repo.files[split])
                lines += [f"  - split: {split}", f"    path: {path.replace('-00000-of-00001.parquet', '-*')}"]
            if i == 0 and len(repo.configs) > 1:
                lines.append("  default: true")
    lines += ["---", f"# {name}: a generated stand-in for {repo.hub_id}, in its layout (bertcmp's tests)"]
    return "\n".join(lines) + "\n"


def write(name: str, root: Path, n: int = 48) -> Path:
    """The preset `name`'s repository under root/name, n rows per split; its path."""
    from datasets import Dataset

    repo = REPOS[name]
    target = root / name
    for i, (split, path) in enumerate(repo.files.items()):
        file = target / path
        file.parent.mkdir(parents=True, exist_ok=True)
        split_name = split.split(":")[-1]
        Dataset.from_dict(_split_rows(repo, split_name, n, seed=1000 * i + zlib.crc32(name.encode())),
                          features=_features(repo)).to_parquet(str(file))
    (target / "README.md").write_text(_readme(name, repo))
    return target


def write_all(root: Path, n: int = 48) -> Path:
    for name in REPOS:
        write(name, root, n)
    return root


if __name__ == "__main__":
    import datasets

    datasets.disable_progress_bars()
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/fixtures")
    write_all(out)
    print(f"wrote {len(REPOS)} task repositories under {out}/: {', '.join(REPOS)}")
