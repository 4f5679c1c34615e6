"""What the data tests share: configs, generated tables and Hub-like folders, a tokenizer that counts."""

import json
from pathlib import Path

import numpy as np
from datasets import Dataset
from omegaconf import OmegaConf

from bertcmp.config import DataConfig
from bertcmp.synthetic import make_reviews


def data_cfg(**overrides):
    cfg = OmegaConf.structured(DataConfig)
    return OmegaConf.merge(cfg, overrides)


def columns(n: int, seed: int) -> dict:
    reviews = make_reviews(n, seed)
    # make every text unique so splits can be compared by text
    return {"text": [f"{t} review {seed}-{i}." for i, t in enumerate(reviews["text"])], "label": reviews["label"]}


def write_aclimdb(root: Path, splits: dict) -> Path:
    for split, cols in splits.items():
        for i, (text, label) in enumerate(zip(cols["text"], cols["label"])):
            folder = root / "aclImdb" / split / ("pos" if label else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}_{8 if label else 2}.txt").write_text(text, encoding="utf-8")
    (root / "aclImdb" / "train" / "unsup").mkdir(exist_ok=True)
    (root / "aclImdb" / "train" / "unsup" / "0_0.txt").write_text("no label here")
    return root / "aclImdb"


def write_table(path: Path, cols: dict) -> str:
    """The columns as a csv, jsonl or parquet file, by the path's suffix."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(dict(zip(cols, row))) + "\n" for row in zip(*cols.values())))
    elif path.suffix == ".parquet":
        Dataset.from_dict(cols).to_parquet(str(path))
    else:
        Dataset.from_dict(cols).to_csv(str(path))
    return str(path)


TOPICS = ["world", "sports", "business", "science"]


def topic_table(n: int, seed: int) -> dict:
    cols = columns(n, seed)
    cols["label"] = [TOPICS[(i * 7 + seed) % 4] for i in range(n)]
    return cols


def pair_table(n: int, seed: int) -> dict:
    """An NLI-like pair task: the hypothesis repeats a word of the premise (entailment) or not."""
    cols = columns(n, seed)
    words = [t.split()[1] for t in cols["text"]]
    hypotheses = [f"it says {w}." if i % 2 else f"it never says zebra{i}." for i, w in enumerate(words)]
    return {"premise": cols["text"], "hypothesis": hypotheses,
            "label": ["entailment" if i % 2 else "neutral" for i in range(n)]}


class CountingTokenizer:
    """Wraps a tokenizer; `calls` counts how often bertcmp.data encodes with it."""

    def __init__(self, tokenizer, monkeypatch):
        from bertcmp.data import tokenizing

        self.tokenizer, self.calls = tokenizer, 0
        self.backend_tokenizer = tokenizer.backend_tokenizer
        self.model_input_names = tokenizer.model_input_names
        real = tokenizing.encode_texts

        def counting(texts, tok, max_length, *args):
            if tok is self:
                self.calls += 1
            return real(texts, tok, max_length, *args)

        monkeypatch.setattr(tokenizing, "encode_texts", counting)


def damage_truncated(path):
    path.write_bytes(path.read_bytes()[:-7])


def damage_garbage(path):
    path.write_bytes(b"\x00garbage" * 10)


def damage_missing(path):
    path.unlink()


def damage_flipped_labels(path):  # well-formed, but not what was written
    np.save(path, 1 - np.load(path))


def padded_fraction(batches, lengths) -> float:
    real = sum(int(lengths[b].sum()) for b in batches)
    return 1 - real / sum(len(b) * int(lengths[b].max()) for b in batches)


def glue_like(root: Path, n: int = 120) -> Path:
    """GLUE SST-2 in the Hub's layout: sentence / label / idx, a ClassLabel, and a test split whose labels are -1."""
    from datasets import ClassLabel, Features, Value

    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"]),
                         "idx": Value("int32")})
    (root / "sst2").mkdir(parents=True)
    for split, seed, hidden in (("train", 1, False), ("validation", 2, False), ("test", 3, True)):
        cols = columns(n, seed)
        labels = [-1] * n if hidden else cols["label"]
        Dataset.from_dict({"sentence": cols["text"], "label": labels, "idx": list(range(n))},
                          features=features).to_parquet(str(root / "sst2" / f"{split}-00000-of-00001.parquet"))
    return root


def glue_repo(root: Path, n: int = 60) -> Path:
    """A local snapshot of a multi-configuration Hub set as GLUE's repo holds it: a folder per configuration and a
    README whose `configs:` block maps each configuration's splits to its files (MNLI's test set:
    validation_matched)."""
    from datasets import ClassLabel, Features, Value

    glue_like(root, n)
    features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                         "label": ClassLabel(names=["entailment", "neutral", "contradiction"]), "idx": Value("int32")})
    (root / "mnli").mkdir()
    for split, seed in (("train", 4), ("validation_matched", 5), ("validation_mismatched", 6)):
        cols = columns(n, seed)
        Dataset.from_dict({"premise": cols["text"], "hypothesis": cols["text"][::-1],
                           "label": [i % 3 for i in range(n)], "idx": list(range(n))},
                          features=features).to_parquet(str(root / "mnli" / f"{split}-00000-of-00001.parquet"))
    blocks = {"sst2": ("train", "validation", "test"),
              "mnli": ("train", "validation_matched", "validation_mismatched")}
    lines = ["---", "configs:"]
    for name, splits in blocks.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {name}/{split}-*" for split in splits]
    (root / "README.md").write_text("\n".join([*lines, "---", "# GLUE, a few rows"]) + "\n")
    return root
