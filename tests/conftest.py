"""Shared fixtures. Everything runs offline: no Hub, no W&B server; models and data are made here."""

import os
import tempfile

# set before transformers / huggingface_hub are imported anywhere: they read these once, at import
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ.pop("WANDB_API_KEY", None)
os.environ["TOKENIZERS_PARALLELISM"] = "false"


def cores_of_this_worker() -> None:
    """Under pytest-xdist (-n N): each worker on cores of its own, with a lease folder of its own, so that its
    jobs use all of its cores and take turns only with each other, as jobs on a machine of their own would; two
    workers' torch threads spinning on the same cores cost 3x, not 2x."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = sorted(os.sched_getaffinity(0))
    if worker is None or count > len(cores):
        return
    os.sched_setaffinity(0, cores[int(worker.removeprefix("gw"))::count])
    os.environ["BERTCMP_LEASE_DIR"] = os.path.join(tempfile.gettempdir(), f"bertcmp-{os.getuid()}", worker)
    os.environ["OMP_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))  # torch's default, before it is imported


cores_of_this_worker()

import gc  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Optional  # noqa: E402

import pytest  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from bertcmp.synthetic import make_reviews  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["fast_tier", "pytester"]  # fast_tier: a test over 20 s outside the slow tier fails


def pytest_collection_finish(session) -> None:
    """What the test modules imported (torch, transformers) is left out of every later garbage collection, as
    bertcmp.recipe does for a run: each job's collection then costs milliseconds, not a quarter of a second."""
    gc.freeze()


@pytest.fixture(autouse=True)
def figures_built_not_drawn(request, monkeypatch) -> None:
    """The comparison's figures are built (every plotting call runs) but neither laid out, drawn nor written,
    except in tests marked `figures`, which look at them: drawing is most of a comparison's time, 0.2 s a figure
    here, and most tests read its numbers and sentences. The command line's tests (subprocesses) draw them all."""
    if request.node.get_closest_marker("figures"):
        return
    from bertcmp.compare import plots

    def built(fig, path, legend_on=None, fontsize=None) -> None:
        plots._finish(fig, legend_on, fontsize)  # what _save does, less the layout, the drawing and the file
        plots.plt.close(fig)

    monkeypatch.setattr(plots, "_save", built)


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory) -> Path:
    """One tokenization cache for the whole session, also seen by CLI subprocesses."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["BERTCMP_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def reviews() -> dict:
    return make_reviews(400, seed=0)


def save_tiny_pretrained(family: str, directory: Path, texts: list[str]) -> Path:
    """A tiny randomly initialised model saved as a Hub repository would hold it (config, weights, tokenizer)."""
    from bertcmp.model import scratch_encoder, train_tokenizer

    tokenizer = train_tokenizer(family, texts, vocab_size=300)
    sizes = OmegaConf.create(dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, vocab_size=300))
    encoder = scratch_encoder(family, sizes, tokenizer)
    encoder.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_other(kind: str, directory: Path, texts: list[str]) -> Path:
    """A tiny random RoBERTa (byte-level BPE, <s> ... </s>, 2 position ids offset by the padding index, no
    token_type_ids) or DistilBERT (WordPiece, no token_type_ids), each with its own tokenizer class."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (AutoModel, DistilBertConfig, DistilBertTokenizerFast, RobertaConfig,
                              RobertaTokenizerFast)

    if kind == "roberta":
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
        tokenizer = RobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                         cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
        config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                               max_position_embeddings=514)  # as roberta-base: 512 tokens after the offset
    else:
        from bertcmp.model import train_tokenizer

        wordpiece = train_tokenizer("bert", texts, 300)
        tokenizer = DistilBertTokenizerFast(tokenizer_object=wordpiece.backend_tokenizer, unk_token="[UNK]",
                                            sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
                                            mask_token="[MASK]")
        config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2, hidden_dim=64,
                                  pad_token_id=tokenizer.pad_token_id)
    AutoModel.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def tiny_model_dir(kind: str, save: Callable[[str, Path, list[str]], Path]):
    """A session fixture `tiny_<kind>_dir`: the directory `save` writes the tiny model of `kind` into, made once."""
    @pytest.fixture(scope="session", name=f"tiny_{kind}_dir")
    def saved(tmp_path_factory, reviews) -> Path:
        return save(kind, tmp_path_factory.mktemp(f"tiny-{kind}"), reviews["text"])

    return saved


tiny_bert_dir = tiny_model_dir("bert", save_tiny_pretrained)
tiny_modernbert_dir = tiny_model_dir("modernbert", save_tiny_pretrained)
tiny_roberta_dir = tiny_model_dir("roberta", save_tiny_other)
tiny_distilbert_dir = tiny_model_dir("distilbert", save_tiny_other)


def compose_config(*overrides: str, hydra: bool = False):
    """The config the command line would compose from these overrides (with Hydra's own keys if `hydra`)."""
    from hydra import compose, initialize_config_dir

    from bertcmp.app import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def closed_port() -> str:
    """The address of a port nobody listens on (a W&B server that is not there): connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def run_cli(*args: str, cwd: Path, timeout: int = 900, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """The real command line, `python -m bertcmp ...`, in a subprocess as a user would run it; `env` sets
    environment variables (None: removes one)."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bertcmp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={k: v for k, v in environment.items() if v is not None})


# the data tests' shared inputs (tests/test_data_*.py)

@pytest.fixture(scope="module")
def imdb_like(tmp_path_factory) -> Path:
    """A small IMDB in the Hub's layout, as in ../shared/data/imdb: plain_text/{train,test}-00000-of-00001.parquet."""
    from datasets import Dataset

    from data_helpers import columns

    root = tmp_path_factory.mktemp("imdb")
    (root / "plain_text").mkdir()
    for split, seed in (("train", 1), ("test", 2)):
        Dataset.from_dict(columns(500, seed)).to_parquet(str(root / "plain_text" / f"{split}-00000-of-00001.parquet"))
    return root


@pytest.fixture(scope="module")
def splits():
    from bertcmp.data import load_splits
    from data_helpers import data_cfg

    return load_splits(data_cfg(synthetic="reviews", num_examples=300, valid_size=0.1, test_size=0.1))
