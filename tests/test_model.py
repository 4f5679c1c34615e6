"""Tokenizers of each family, scratch encoders, loading saved models through model.pretrained, the shared head."""

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoTokenizer

from bertcmp.config import ModelConfig
from bertcmp import hub
from bertcmp.errors import ConfigError, ModelError, NotCachedError
from bertcmp.synthetic import make_reviews
from bertcmp.model import SequenceClassifier, build_classifier, describe_encoder, make_tokenizer, train_tokenizer


TWO = ["0", "1"]  # the classes of a two-class task


def model_cfg(**overrides):
    return OmegaConf.merge(OmegaConf.structured(ModelConfig), overrides)


def test_bert_tokenizer_is_lowercased_wordpiece(reviews):
    tok = train_tokenizer("bert", reviews["text"], 300)
    ids = tok("The ACTING was Great")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok("The ACTING was Great")["input_ids"] == tok("the acting was great")["input_ids"]
    assert type(tok.backend_tokenizer.model).__name__ == "WordPiece"


def test_modernbert_tokenizer_is_byte_level_bpe(reviews):
    tok = train_tokenizer("modernbert", reviews["text"], 300)
    ids = tok("The acting was great")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert type(tok.backend_tokenizer.model).__name__ == "BPE"
    assert tok.unk_token_id not in tok("naïve 🎬 review")["input_ids"]  # bytes: nothing is unknown
    assert tok("Great")["input_ids"] != tok("great")["input_ids"]  # cased, as ModernBERT's own


def test_tokenizer_round_trips_through_save_pretrained(reviews, tmp_path):
    tok = train_tokenizer("bert", reviews["text"], 300)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("a wonderful film")["input_ids"] == tok("a wonderful film")["input_ids"]


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_tokenizer_training_is_deterministic(family):
    texts = make_reviews(2000, 9)["text"]  # large enough for ties between equally frequent pieces
    vocabs = [train_tokenizer(family, texts, 400).get_vocab() for _ in range(4)]
    assert all(v == vocabs[0] for v in vocabs) and 100 < len(vocabs[0]) <= 400


@pytest.mark.parametrize("family", ["bert", "modernbert"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_scratch_classifier_gives_two_logits(reviews, family, pooling):
    cfg = model_cfg(name=family, pretrained=None, pooling=pooling)
    tok = make_tokenizer(cfg, reviews["text"])
    model = build_classifier(cfg, tok, TWO)
    assert type(model.encoder).__name__ == ("BertModel" if family == "bert" else "ModernBertModel")
    assert model.encoder.config.vocab_size == len(tok)
    batch = tok(reviews["text"][:3], padding=True, truncation=True, max_length=64, return_tensors="pt")
    logits = model(batch["input_ids"], batch["attention_mask"])
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()


def test_same_head_for_both_families(reviews):
    heads = []
    for family in ("bert", "modernbert"):
        cfg = model_cfg(name=family, pretrained=None)
        model = build_classifier(cfg, make_tokenizer(cfg, reviews["text"]), TWO)
        heads.append([(n, tuple(p.shape)) for n, p in model.named_parameters() if not n.startswith("encoder.")])
    assert heads[0] == heads[1] == [("head.weight", (2, 64)), ("head.bias", (2,))]


def test_mean_pooling_ignores_padding():
    class Fixed(torch.nn.Module):
        config = OmegaConf.create({"hidden_size": 2})

        def forward(self, input_ids, attention_mask=None):
            hidden = input_ids.unsqueeze(-1).float().expand(-1, -1, 2)
            return type("Out", (), {"last_hidden_state": hidden})()

    first_logit = {}
    for pooling, cls_last in (("mean", False), ("cls", False), ("cls", True)):
        model = SequenceClassifier(Fixed(), pooling=pooling, dropout=0.0, cls_last=cls_last)
        model.head.weight.data = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
        model.head.bias.data.zero_()
        first_logit[pooling, cls_last] = model(torch.tensor([[2, 4, 99]]), torch.tensor([[1, 1, 0]]))[0, 0].item()
    # mean of the real tokens; [CLS] first; [CLS] last = the last real token, not the padding after it
    assert first_logit == {("mean", False): pytest.approx(3.0), ("cls", False): 2.0, ("cls", True): 4.0}


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_saved_model_loads_through_model_pretrained(request, family, reviews):
    directory = request.getfixturevalue(f"tiny_{family}_dir")
    cfg = model_cfg(name=family, pretrained=str(directory))
    tok = make_tokenizer(cfg, ["unused: a pretrained model brings its own tokenizer"])
    assert len(tok) == len(AutoTokenizer.from_pretrained(directory))
    model = build_classifier(cfg, tok, TWO)
    assert model.encoder.config.hidden_size == 32 and model.encoder.config.model_type == family
    batch = tok(reviews["text"][:2], padding=True, return_tensors="pt", truncation=True, max_length=64)
    assert model(batch["input_ids"], batch["attention_mask"]).shape == (2, 2)


def test_unreachable_hub_id_points_to_a_local_dir(monkeypatch):
    monkeypatch.setattr(hub, "is_offline", lambda: False)  # as if the Hub had been tried and not reached
    cfg = model_cfg(name="bert", pretrained="bert-base-uncased")
    with pytest.raises(ModelError, match=r"neither a local directory nor reachable.*model.pretrained=/local/dir"):
        make_tokenizer(cfg, [])
    with pytest.raises(ModelError, match="experiment=smoke"):
        build_classifier(cfg, None, TWO)


def test_offline_a_hub_id_not_in_the_cache_names_the_prepare_command():
    cfg = model_cfg(name="bert", pretrained="nobody/no-such-model")  # HF_HUB_OFFLINE=1 (conftest), an empty cache
    with pytest.raises(NotCachedError, match=r"model.pretrained='nobody/no-such-model' is not in the Hugging Face "
                                             r"cache .* python -m bertcmp.prepare model.pretrained=nobody/no-such-model"):
        make_tokenizer(cfg, [])


def test_directory_without_a_model_is_named(tmp_path):
    with pytest.raises(ModelError, match="is a directory but not a saved model"):
        build_classifier(model_cfg(name="bert", pretrained=str(tmp_path)), None, TWO)


def test_max_length_beyond_the_model_is_lowered_to_its_limit(tiny_bert_dir, caplog):
    cfg = model_cfg(name="bert", pretrained=str(tiny_bert_dir))
    assert describe_encoder(cfg, 300) == ("bert", 300) and not caplog.records
    assert describe_encoder(cfg, 1024).max_length == 512  # the saved model's max_position_embeddings
    assert f"data.max_length=1024 is more than {tiny_bert_dir} reads: using 512 tokens" in caplog.text
    for family, limit in (("bert", 512), ("modernbert", 8192)):  # from scratch: the family's pretrained limit
        assert describe_encoder(model_cfg(name=family, pretrained=None), 10_000).max_length == limit


def test_attention_choice(reviews):
    from bertcmp.model import resolve_attention

    assert resolve_attention("auto", torch.device("cpu")) == "sdpa"
    assert resolve_attention("eager", torch.device("cpu")) == "eager"
    cfg = model_cfg(name="bert", pretrained=None, attn_implementation="eager")
    model = build_classifier(cfg, make_tokenizer(cfg, reviews["text"]), TWO)
    assert model.encoder.config._attn_implementation == "eager"


@pytest.mark.parametrize("family, head_parts", [
    ("bert", ["bert.pooler.dense.weight", "classifier.weight"]),  # BERT's pooler (dense + tanh on [CLS])
    ("modernbert", ["head.dense.weight", "head.norm.weight", "classifier.weight"]),  # dense, GELU, LayerNorm
])
def test_native_head_is_the_familys_own(reviews, family, head_parts):
    cfg = model_cfg(name=family, pretrained=None, head="native")
    tok = make_tokenizer(cfg, reviews["text"])
    model = build_classifier(cfg, tok, TWO)
    names = [n for n, _ in model.model.named_parameters()]
    assert all(part in names for part in head_parts) and model.config.num_labels == 2
    batch = tok(reviews["text"][:3], padding=True, truncation=True, max_length=64, return_tensors="pt")
    assert model(batch["input_ids"], batch["attention_mask"]).shape == (3, 2)


def test_native_head_keeps_the_pretrained_parts(tmp_path, reviews, tiny_bert_dir):
    from safetensors.torch import load_file
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    bert = build_classifier(model_cfg(name="bert", pretrained=str(tiny_bert_dir), head="native"),
                            AutoTokenizer.from_pretrained(tiny_bert_dir), TWO)
    saved = load_file(tiny_bert_dir / "model.safetensors")
    assert torch.equal(bert.model.bert.pooler.dense.weight, saved["pooler.dense.weight"])
    # ModernBERT-base is a masked-LM checkpoint: its prediction head is what the native classifier reuses
    tok = train_tokenizer("modernbert", reviews["text"], 300)
    mlm = ModernBertForMaskedLM(ModernBertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, cls_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id, sep_token_id=tok.sep_token_id))
    mlm.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    native = build_classifier(model_cfg(name="modernbert", pretrained=str(tmp_path), head="native", pooling="mean"),
                              tok, TWO)
    assert torch.equal(native.model.head.dense.weight, mlm.head.dense.weight)
    assert native.config.classifier_pooling == "mean"


def test_native_bert_head_reads_cls_only(reviews):
    with pytest.raises(ConfigError, match="model.pooling=mean with model.head=native"):
        build_classifier(model_cfg(name="bert", pretrained=None, head="native", pooling="mean"),
                         make_tokenizer(model_cfg(name="bert", pretrained=None), reviews["text"]), TWO)


def test_one_output_per_class(reviews):
    classes = ["business", "science", "sports", "world"]
    for head in ("shared", "native"):
        cfg = model_cfg(name="bert", pretrained=None, head=head)
        tok = make_tokenizer(cfg, reviews["text"])
        model = build_classifier(cfg, tok, classes)
        batch = tok(reviews["text"][:3], padding=True, truncation=True, max_length=64, return_tensors="pt")
        assert model(batch["input_ids"], batch["attention_mask"]).shape == (3, 4)
    assert model.config.id2label == dict(enumerate(classes))  # the native head names its classes, as transformers


@pytest.mark.parametrize("kind", ["roberta", "distilbert"])
@pytest.mark.parametrize("head", ["shared", "native"])
def test_any_encoder_through_model_auto(request, reviews, kind, head):
    directory = request.getfixturevalue(f"tiny_{kind}_dir")
    cfg = model_cfg(name="auto", pretrained=str(directory), head=head)
    # RoBERTa has 514 positions but reads 512 tokens (its position ids start after the padding index)
    assert describe_encoder(cfg, 10_000) == (kind, 512)
    tok = make_tokenizer(cfg, [])
    assert type(tok).__name__.lower().startswith(kind)
    model = build_classifier(cfg, tok, TWO)
    batch = tok(reviews["text"][:3], reviews["text"][3:6], padding=True, truncation=True, max_length=512,
                return_tensors="pt")
    assert "token_type_ids" not in batch  # neither family reads them
    logits = model(batch["input_ids"], batch["attention_mask"])
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()


def test_bert_reads_token_type_ids_and_distilbert_is_spared_them(tiny_bert_dir, tiny_distilbert_dir, reviews):
    bert = build_classifier(model_cfg(name="bert", pretrained=str(tiny_bert_dir), dropout=0.0),
                            AutoTokenizer.from_pretrained(tiny_bert_dir), TWO).eval()
    ids, mask = torch.tensor([[2, 10, 11, 3, 12, 3]]), torch.ones(1, 6, dtype=torch.long)
    types = torch.tensor([[0, 0, 0, 0, 1, 1]])
    assert not torch.equal(bert(ids, mask, types), bert(ids, mask))  # segment embeddings count
    distil = build_classifier(model_cfg(name="auto", pretrained=str(tiny_distilbert_dir)),
                              AutoTokenizer.from_pretrained(tiny_distilbert_dir), TWO).eval()
    assert torch.equal(distil(ids, mask, types), distil(ids, mask))  # DistilBERT's forward takes none: not passed


def test_native_head_mean_pooling_is_modernbert_only(tiny_roberta_dir):
    with pytest.raises(ConfigError, match="only ModernBERT's can average"):
        build_classifier(model_cfg(name="auto", pretrained=str(tiny_roberta_dir), head="native", pooling="mean"),
                         AutoTokenizer.from_pretrained(tiny_roberta_dir), TWO)


# the published base models' config.json: hidden, layers, heads, FFN, vocabulary, positions
BASE_SHAPES = {"bert": (768, 12, 12, 3072, 30522, 512), "modernbert": (768, 22, 12, 1152, 50368, 8192)}


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_base_shapes_from_scratch(reviews, family):
    """model/scratch=base: each family's real base shape, its embedding table the real vocabulary's size; a size
    set on the command line wins over the base model's. Built on the meta device: shapes without the seconds that
    filling a base model's weights with random numbers takes."""
    from bertcmp.model import scratch_encoder

    cfg = model_cfg(name=family, pretrained=None, scratch=dict(hidden_size=None, num_layers=None, num_heads=None,
                                                               intermediate_size=None, vocab_size=None))
    tok = make_tokenizer(cfg, reviews["text"])
    assert len(tok) < BASE_SHAPES[family][4]  # the generated reviews hold few distinct pieces
    with torch.device("meta"):
        model = scratch_encoder(family, cfg.scratch, tok)
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size,
            config.vocab_size, config.max_position_embeddings) == BASE_SHAPES[family]
    assert model.get_input_embeddings().weight.shape == (BASE_SHAPES[family][4], BASE_SHAPES[family][0])
    assert describe_encoder(cfg, 100_000).max_length == BASE_SHAPES[family][5]
    cfg.scratch.num_layers = 4
    with torch.device("meta"):
        assert scratch_encoder(family, cfg.scratch, tok).config.num_hidden_layers == 4


@pytest.mark.parametrize("family, sizes, names", [
    ("bert", dict(hidden_size=64, num_heads=3), "model.scratch.hidden_size=64 must be divisible by "
                                                 "model.scratch.num_heads=3"),
    ("bert", dict(hidden_size=None, num_heads=5), "hidden_size=768 must be divisible by model.scratch.num_heads=5"),
    ("modernbert", dict(hidden_size=6, num_heads=2), "must be even for ModernBERT"),
])
def test_scratch_sizes_that_do_not_fit_fail_before_the_data_loads(family, sizes, names):
    with pytest.raises(ConfigError, match=names):
        describe_encoder(model_cfg(name=family, pretrained=None, scratch=sizes), 128)


def test_flash_attention_only_on_request_and_only_in_half_precision(monkeypatch):
    import sys
    import types

    from bertcmp.model import resolve_attention

    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))  # installed, on an Ampere GPU
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    gpu = torch.device("cuda:0")
    for dtype in (None, torch.bfloat16, torch.float16):  # SDPA runs flash kernels itself where there is no padding
        assert resolve_attention("auto", gpu, dtype) == "sdpa"
    assert resolve_attention("flash_attention_2", gpu, torch.bfloat16) == "flash_attention_2"
    with pytest.raises(ConfigError, match="model.attn_implementation=flash_attention_2 runs only in half precision"):
        resolve_attention("flash_attention_2", gpu, None)  # flash-attn rejects fp32 inputs on the first forward


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_a_checkpoint_saved_in_bf16_trains_with_fp32_weights(tmp_path, reviews, family):
    from transformers import AutoModel

    from bertcmp.model import load_encoder
    from conftest import save_tiny_pretrained

    directory = save_tiny_pretrained(family, tmp_path / "tiny", reviews["text"][:200])
    AutoModel.from_pretrained(directory, dtype=torch.bfloat16).save_pretrained(directory)  # as many Hub models are
    assert AutoModel.from_pretrained(directory).dtype == torch.bfloat16  # transformers 5 keeps the saved dtype
    assert {p.dtype for p in load_encoder(str(directory)).parameters()} == {torch.float32}
    for head in ("shared", "native"):
        cfg = model_cfg(name=family, pretrained=str(directory), head=head)
        model = build_classifier(cfg, make_tokenizer(cfg, []), TWO)
        assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("family, pooling", [("bert", "cls"), ("modernbert", "mean"), ("modernbert", "cls")])
def test_no_mask_for_a_batch_without_padding_gives_the_same_logits(reviews, family, pooling):
    for head in ("shared", "native") if pooling == "cls" or family == "modernbert" else ("shared",):
        cfg = model_cfg(name=family, pretrained=None, pooling=pooling, head=head)
        model = build_classifier(cfg, make_tokenizer(cfg, reviews["text"]), TWO).eval()
        ids = torch.randint(5, 200, (3, 12))
        with torch.no_grad():
            assert torch.equal(model(ids, torch.ones_like(ids)), model(ids))


@pytest.mark.parametrize("family", ["bert", "modernbert"])
@pytest.mark.parametrize("head", ["shared", "native"])
def test_gradient_checkpointing_keeps_the_numbers(reviews, family, head):
    """transformers' own checkpointing, dropout replayed: the same loss and gradients, in training mode."""
    from bertcmp.model import enable_gradient_checkpointing

    cfg = model_cfg(name=family, pretrained=None, head=head)
    tok = make_tokenizer(cfg, reviews["text"])
    batch = tok(reviews["text"][:4], padding=True, truncation=True, max_length=64, return_tensors="pt")

    def loss_and_grads(checkpointing: bool):
        torch.manual_seed(0)
        model = build_classifier(cfg, tok, TWO)
        if checkpointing:
            enable_gradient_checkpointing(model)
        model.train()
        torch.manual_seed(1)
        loss = model(batch["input_ids"], batch["attention_mask"]).logsumexp(-1).mean()
        loss.backward()
        encoder = model.model if head == "native" else model.encoder
        return loss, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}, encoder

    plain_loss, plain, _ = loss_and_grads(False)
    loss, grads, encoder = loss_and_grads(True)
    assert getattr(encoder, "is_activation_checkpointing", None) or encoder.is_gradient_checkpointing
    torch.testing.assert_close(loss, plain_loss)
    assert grads.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(grads[name], plain[name])
