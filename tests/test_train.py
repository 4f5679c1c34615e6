"""The training loop on a toy model and toy batches: it needs no encoder and no data set of ours."""

import io
import logging
import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from bertcmp.config import TrainerConfig
from bertcmp.errors import ConfigError, TrainingError
from bertcmp.train import TrainingState, evaluate, fit, make_optimizer, make_scheduler, resolve_precision


class BagOfTokens(nn.Module):
    def __init__(self, vocab: int = 20):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab, 8, mode="mean")
        self.out = nn.Linear(8, 2)

    def forward(self, input_ids, attention_mask=None):
        return self.out(self.embed(input_ids))


def toy_batches(n: int, seed: int, batch_size: int = 16) -> list[dict]:
    """Label 1 when token 1 appears more often than token 2."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 3, (n, 6), generator=g)
    labels = ((ids == 1).sum(1) > (ids == 2).sum(1)).long()
    return [{"input_ids": ids[i:i + batch_size], "attention_mask": torch.ones_like(ids[i:i + batch_size]),
             "labels": labels[i:i + batch_size]} for i in range(0, n, batch_size)]


def trainer_cfg(**overrides):
    return OmegaConf.merge(OmegaConf.structured(TrainerConfig), {"lr": 0.05, "epochs": 4, **overrides})


def test_fit_learns_and_keeps_the_best_epoch():
    torch.manual_seed(0)
    model = BagOfTokens()
    steps, epochs = [], []
    result = fit(model, toy_batches(256, 0), toy_batches(128, 1), trainer_cfg(), torch.device("cpu"),
                 on_step=lambda s, loss, lr: steps.append((s, loss, lr)), on_validation=lambda history: epochs.append(history[-1]))
    assert len(result.history) == 4 and [r.epoch for r in epochs] == [1, 2, 3, 4]
    assert [s for s, _, _ in steps] == list(range(1, 4 * 16 + 1)) and epochs[-1].step == 64
    accuracies = [r.valid_accuracy for r in result.history]
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1
    assert max(accuracies) > 0.9
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.history[0].examples == 256 and result.history[0].tokens == 256 * 6
    # the kept weights are the best epoch's, not the last
    model.load_state_dict(result.best_weights)
    assert evaluate(model, toy_batches(128, 1), torch.device("cpu")).accuracy == max(accuracies)


def test_evaluate_metrics_match_hand_counts():
    class Fixed(nn.Module):
        def forward(self, input_ids, attention_mask=None):
            return torch.stack([torch.zeros(len(input_ids)), input_ids[:, 0].float() - 0.5], 1)

    ids = torch.tensor([[1], [1], [0], [0], [1]])
    labels = torch.tensor([1, 0, 0, 1, 1])
    batch = [{"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}]
    ev = evaluate(Fixed(), batch, torch.device("cpu"))
    assert ev.preds.tolist() == [1, 1, 0, 0, 1]
    assert ev.accuracy == pytest.approx(3 / 5)
    scores = ev.scores(["neg", "pos"])
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    # macro-F1: class neg has precision 1/2, recall 1/2; MCC from the 2x2 table (tp 2, tn 1, fp 1, fn 1)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert scores["mcc"] == pytest.approx((2 * 1 - 1 * 1) / math.sqrt(3 * 3 * 2 * 2))
    assert scores["per_class"]["neg"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert ev.tokens == 5 and ev.seconds > 0 and ev.speed()["tokens_per_s"] == 5 / ev.seconds
    p = 1 / (1 + math.exp(-0.5))
    expected = -np.mean([math.log(p), math.log(1 - p), math.log(p), math.log(1 - p), math.log(p)])
    assert ev.loss == pytest.approx(expected, rel=1e-5)


def test_nan_loss_stops_the_run():
    with pytest.raises(TrainingError, match=r"loss became (nan|inf).*lower trainer.lr"):
        fit(BagOfTokens(), toy_batches(64, 0), toy_batches(32, 1), trainer_cfg(lr=1e30, optimizer="adamw"),
            torch.device("cpu"))


def test_a_nan_read_back_later_names_its_step():
    with pytest.raises(TrainingError, match=r"loss became (nan|inf) at epoch 1, step \d+ \(read back with steps 1-4\)"):
        fit(BagOfTokens(), toy_batches(64, 0), toy_batches(32, 1), trainer_cfg(lr=1e30, optimizer="adamw", log_every=4),
            torch.device("cpu"))


@pytest.mark.parametrize("log_every", [1, 4, 16])
def test_the_loop_reads_the_device_only_every_log_every_steps(monkeypatch, log_every):
    """Reading a tensor's value makes the host wait for the device (on a GPU, a sync that leaves it idle). The
    loop's only reads are bertcmp.train.read_back, one transfer each: after every log_every optimizer steps,
    and at each validation (the training sums, then the evaluation pass). Any other read in train.py counts."""
    import sys

    import bertcmp.train as train

    reads = []
    for name in ("cpu", "item", "tolist", "__int__", "__float__", "__bool__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            if sys._getframe(1).f_code.co_filename == train.__file__:
                reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    torch.manual_seed(0)
    steps = []
    fit(BagOfTokens(), toy_batches(256, 0), toy_batches(64, 1), trainer_cfg(epochs=2, log_every=log_every),
        torch.device("cpu"), on_step=lambda step, loss, lr: steps.append((step, loss)))
    per_epoch = 16 // log_every + 2  # 16 steps an epoch; at validation: the training sums and the evaluation
    assert reads == ["cpu"] * 2 * per_epoch  # each read_back is one transfer
    assert [step for step, _ in steps] == list(range(1, 33)) and all(math.isfinite(loss) for _, loss in steps)


def test_fit_is_reproducible():
    def once():
        torch.manual_seed(3)
        return fit(BagOfTokens(), toy_batches(128, 0), toy_batches(64, 1), trainer_cfg(epochs=2),
                   torch.device("cpu")).history

    a, b = once(), once()
    assert [r.train_loss for r in a] == [r.train_loss for r in b]


def test_linear_schedule_with_warmup():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, trainer_cfg(scheduler="linear", warmup_ratio=0.1), total_steps=100)
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == 0 and lrs[10] == pytest.approx(1.0) and lrs[55] == pytest.approx(0.5) and lrs[-1] < 0.02


def test_constant_schedule_keeps_the_rate():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.3)
    sched = make_scheduler(opt, trainer_cfg(), total_steps=10)
    for _ in range(10):
        opt.step()
        sched.step()
    assert sched.get_last_lr() == [0.3]


def test_precisions():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) is None and resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) == torch.bfloat16
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)


def test_auto_precision_asks_for_bf16_in_hardware(monkeypatch):
    asked = []

    def bf16_supported(including_emulation=True):  # a V100 / T4: bf16 only emulated
        asked.append(including_emulation)
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16_supported)
    assert resolve_precision("auto", torch.device("cuda:0")) == torch.float16  # with the gradient scaler
    assert asked == [False]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # Ampere and newer
    assert resolve_precision("auto", torch.device("cuda:0")) == torch.bfloat16


def test_a_batch_without_padding_is_given_no_mask():
    class Recording(BagOfTokens):
        masks: list = []

        def forward(self, input_ids, attention_mask=None):
            self.masks.append(attention_mask is not None)
            return super().forward(input_ids, attention_mask)

    batches = toy_batches(32, 0)
    batches[1]["attention_mask"][0, -1] = 0  # one padded item
    model = Recording()
    fit(model, batches, batches, trainer_cfg(epochs=1), torch.device("cpu"))
    assert model.masks == [False, True] * 2  # training, then validation: the mask only where there is padding


def test_bf16_autocast_trains_on_cpu():
    torch.manual_seed(0)
    result = fit(BagOfTokens(), toy_batches(128, 0), toy_batches(64, 1), trainer_cfg(epochs=2),
                 torch.device("cpu"), dtype=torch.bfloat16)
    assert all(math.isfinite(r.train_loss) for r in result.history)


def test_resume_from_a_saved_epoch_gives_the_same_run():
    def train(epochs, resume=None, saved=None):
        torch.manual_seed(5)
        model = BagOfTokens()
        loader = torch.utils.data.DataLoader(toy_batches(128, 0, batch_size=1), batch_size=None, shuffle=True,
                                             generator=torch.Generator().manual_seed(1))
        result = fit(model, loader, toy_batches(64, 1), trainer_cfg(epochs=epochs, optimizer="adamw",
                                                                    scheduler="linear", warmup_ratio=0.2),
                     torch.device("cpu"), save_state=saved.append if saved is not None else None, resume=resume)
        return result

    whole = train(4)
    states: list = []
    train(4, saved=states)
    assert len(states) == 3  # after epochs 1..3; the last epoch ends the run instead
    assert [len(s.progress.history) for s in states] == [1, 2, 3]  # each a snapshot, not the live record
    written = io.BytesIO()  # as written to resume/state.pt and read back as data only, never unpickled code
    torch.save(states[1].to_dict(), written)
    saved = TrainingState.from_dict(torch.load(io.BytesIO(written.getvalue()), weights_only=True))
    resumed = train(4, resume=saved)  # as if the machine died during epoch 3
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in whole.history]
    assert resumed.best_epoch == whole.best_epoch
    assert all(torch.equal(resumed.best_weights[k], whole.best_weights[k]) for k in whole.best_weights)


def test_a_gpu_dropout_state_goes_back_to_the_gpu_the_resumed_job_trains_on(monkeypatch):
    """A resumed job may lease another GPU: the saved state is the training GPU's, restored to the new one."""
    from bertcmp.train import _rng_states, _set_rng_states

    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: calls.append(("get", device)) or torch.ones(3))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: calls.append(("set", device, state)))
    states = {**_rng_states(torch.device("cuda:1")), "loader": None}
    _set_rng_states(states, toy_batches(16, 0), torch.device("cuda:0"))
    assert calls[0] == ("get", torch.device("cuda:1"))
    assert calls[1][:2] == ("set", torch.device("cuda:0")) and torch.equal(calls[1][2], torch.ones(3))
    assert _rng_states(torch.device("cpu"))["cuda"] is None and len(calls) == 2


def test_evaluate_puts_length_sorted_batches_back_in_item_order():
    torch.manual_seed(0)
    model = BagOfTokens()
    batches = toy_batches(64, 1)
    for b, start in zip(batches, range(0, 64, 16)):
        b["item"] = torch.arange(start, start + 16)
    in_order = evaluate(model, batches, torch.device("cpu"))
    shuffled = [batches[i] for i in (2, 0, 3, 1)]
    again = evaluate(model, shuffled, torch.device("cpu"))
    assert np.array_equal(in_order.preds, again.preds) and np.allclose(in_order.probs, again.probs)
    assert np.array_equal(in_order.labels, again.labels)


@pytest.mark.parametrize("optimizer, decay_per_step", [
    # Composer's DecoupledAdamW (ModernBERT's recipe): weight_decay follows the schedule, unscaled by lr
    ("decoupled_adamw", lambda wd, lr_t, lr: wd * lr_t / lr),
    ("adamw", lambda wd, lr_t, lr: lr_t * wd),  # torch's AdamW: scaled by the learning rate
])
def test_one_steps_weight_decay_follows_the_formula(optimizer, decay_per_step):
    """With a zero gradient Adam moves nothing, so a step changes the weights by the decay alone."""
    weight = nn.Parameter(torch.full((3,), 2.0, dtype=torch.float64))
    model = nn.Module()
    model.weight = weight
    cfg = trainer_cfg(optimizer=optimizer, lr=3e-5, weight_decay=3e-6, scheduler="linear", warmup_ratio=0.5)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, total_steps=4)
    for _ in range(4):  # lr_t: 0 and lr/2 (warm-up), lr, lr/2 (linear decay)
        lr_t = sched.get_last_lr()[0]
        before = weight.detach().clone()
        weight.grad = torch.zeros_like(weight)
        opt.step()
        sched.step()
        expected = before * (1 - decay_per_step(3e-6, lr_t, 3e-5))
        assert torch.allclose(weight.detach(), expected, rtol=0, atol=1e-15)
    assert lr_t == pytest.approx(3e-5 / 2)  # the last step decayed at half the peak rate


def test_accumulated_micro_batches_make_the_same_step_as_their_union():
    """4 micro-batches of 8 then a last window of 8 (40 examples) = one batch of 32 then one of 8, step for
    step: dropout off, fp32. Adam's eps is 1 so that a step is proportional to the gradient (with the usual 1e-8
    the first step is lr x sign(gradient), blind to a wrongly scaled loss)."""
    def train(batch_size: int, accumulate: int):
        torch.manual_seed(0)
        model = BagOfTokens()
        steps = []
        fit(model, toy_batches(40, 0, batch_size), toy_batches(16, 1), trainer_cfg(
            epochs=1, lr=0.5, eps=1.0, grad_accum_steps=accumulate), torch.device("cpu"),
            on_step=lambda step, loss, lr: steps.append((step, loss)))
        return model.state_dict(), steps

    whole, whole_steps = train(32, 1)
    micro, micro_steps = train(8, 4)
    assert [s for s, _ in micro_steps] == [s for s, _ in whole_steps] == [1, 2]
    assert [loss for _, loss in micro_steps] == pytest.approx([loss for _, loss in whole_steps], rel=1e-6)
    torch.manual_seed(0)
    untrained = BagOfTokens().state_dict()  # the weights both started from
    for name in whole:
        assert not torch.allclose(whole[name], untrained[name])  # the steps moved the weights
        assert torch.allclose(micro[name], whole[name], rtol=1e-5, atol=1e-7), name


def test_validation_every_few_steps():
    """64 examples in batches of 16: 4 optimizer steps an epoch. eval_every=3 validates at steps 3 and 6, and
    at the end; eval_every=4 falls on each epoch's end."""
    def history(eval_every: int):
        torch.manual_seed(0)
        seen = []
        progress = fit(BagOfTokens(), toy_batches(64, 0), toy_batches(32, 1),
                       trainer_cfg(epochs=2, eval_every=eval_every), torch.device("cpu"),
                       on_validation=lambda h: seen.append(len(h)))
        assert seen == list(range(1, len(progress.history) + 1))  # told after every validation
        return progress.history

    every3 = history(3)
    assert [(r.epoch, r.step, r.examples) for r in every3] == [(0.75, 3, 48), (1.5, 6, 48), (2, 8, 32)]
    assert [(r.epoch, r.step) for r in history(4)] == [(1, 4), (2, 8)]


def test_patience_stops_when_validation_stops_improving():
    torch.manual_seed(0)
    progress = fit(BagOfTokens(), toy_batches(64, 0), toy_batches(32, 1),
                   trainer_cfg(epochs=10, lr=1e-12, patience=2), torch.device("cpu"))  # learns nothing
    assert progress.stopped == "patience" and len(progress.history) == 3  # the first, then 2 without a better one
    assert progress.best_index == 0 and progress.best_epoch == 1


@pytest.mark.parametrize("resume_at", [2, 3])  # saved at step 12 (mid-epoch 2) and step 16 (its end)
def test_resume_mid_epoch_gives_the_same_run(resume_at):
    cfg = trainer_cfg(epochs=3, optimizer="adamw", scheduler="linear", warmup_ratio=0.2, eval_every=4,
                      grad_accum_steps=2, patience=5)

    def train(resume=None, saved=None):
        torch.manual_seed(5)
        loader = torch.utils.data.DataLoader(toy_batches(128, 0, batch_size=8), batch_size=None, shuffle=True,
                                             generator=torch.Generator().manual_seed(1))
        return fit(BagOfTokens(), loader, toy_batches(64, 1), cfg, torch.device("cpu"),
                   save_state=saved.append if saved is not None else None, resume=resume)

    states: list = []
    whole = train(saved=states)
    assert [r.step for r in whole.history] == [4, 8, 12, 16, 20, 24]  # 16 batches of 8, 2 per step: 8 steps an epoch
    assert [s.progress.step for s in states] == [4, 8, 12, 16, 20]
    resumed = train(resume=TrainingState.from_dict(states[resume_at].to_dict()))
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in whole.history]
    assert [r.valid_accuracy for r in resumed.history] == [r.valid_accuracy for r in whole.history]
    assert all(torch.equal(resumed.best_weights[k], whole.best_weights[k]) for k in whole.best_weights)


@pytest.mark.parametrize("select_by", ["accuracy", "macro_f1", "mcc"])
def test_the_best_validation_is_picked_by_the_chosen_metric(select_by):
    torch.manual_seed(0)
    progress = fit(BagOfTokens(), toy_batches(128, 0), toy_batches(64, 1), trainer_cfg(epochs=4, lr=0.01),
                   torch.device("cpu"), select_by=select_by)
    scores = [getattr(r, f"valid_{select_by}") for r in progress.history]
    assert progress.best_index == scores.index(max(scores)) and progress.best_score == max(scores)


# ---------------------------------------------------------------------------------------------- healing


class RunsOutOfMemory(nn.Module):
    """GPU memory as a limit on rows: from its `after`-th training forward on, a batch of more than `limit` rows
    raises CUDA's out-of-memory error (as a real GPU would); `eval_limit` the same for evaluation."""

    def __init__(self, model: nn.Module, limit: int, after: int = 0, eval_limit: int = 10**9):
        super().__init__()
        self.model, self.limit, self.after, self.eval_limit, self.calls = model, limit, after, eval_limit, 0

    def forward(self, input_ids, attention_mask=None):
        if self.training:
            self.calls += 1
        limit = self.limit if self.training and self.calls > self.after else self.eval_limit
        if len(input_ids) > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return self.model(input_ids, attention_mask)


class DroppingBag(BagOfTokens):
    """BagOfTokens with dropout: a step run again must draw the same masks."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.3)

    def forward(self, input_ids, attention_mask=None):
        return self.out(self.drop(self.embed(input_ids)))


def test_out_of_memory_halves_the_micro_batch_and_ends_as_an_unhealed_run_at_half_size():
    """Out of memory at the first step: the same steps in micro-batches of 8 x 2, dropout masks included, give
    exactly the weights of a run configured with batches of 8 and trainer.grad_accum_steps=2."""
    torch.manual_seed(3)
    healed = RunsOutOfMemory(DroppingBag(), limit=8)
    progress = fit(healed, toy_batches(128, 0, batch_size=16), toy_batches(64, 1), trainer_cfg(epochs=2),
                   torch.device("cpu"))
    torch.manual_seed(3)
    plain = DroppingBag()
    reference = fit(plain, toy_batches(128, 0, batch_size=8), toy_batches(64, 1),
                    trainer_cfg(epochs=2, grad_accum_steps=2), torch.device("cpu"))
    assert progress.recovered == [{"what": "out of memory", "epoch": 1, "step": 1, "micro_batch": 8,
                                   "grad_accum_steps": 2}]
    assert all(torch.equal(healed.model.state_dict()[k], v) for k, v in plain.state_dict().items())
    assert [r.train_loss for r in progress.history] == [r.train_loss for r in reference.history]


def test_out_of_memory_mid_run_keeps_the_trajectory_to_float_tolerance(caplog):
    torch.manual_seed(4)
    healed = RunsOutOfMemory(BagOfTokens(), limit=4, after=5)  # steps 1-5 at 16, then 8, then 4
    with caplog.at_level(logging.WARNING, logger="bertcmp.train"):
        progress = fit(healed, toy_batches(128, 0), toy_batches(64, 1), trainer_cfg(epochs=2), torch.device("cpu"))
    torch.manual_seed(4)
    plain = BagOfTokens()
    fit(plain, toy_batches(128, 0), toy_batches(64, 1), trainer_cfg(epochs=2), torch.device("cpu"))
    assert [(r["step"], r["micro_batch"], r["grad_accum_steps"]) for r in progress.recovered] == [(6, 8, 2),
                                                                                                (6, 4, 4)]
    assert "out of memory at step 6: micro-batch halved to 8 examples, accumulation doubled to 2" in caplog.text
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(healed.model.state_dict()[k], v)


def test_evaluation_halves_its_own_batch():
    torch.manual_seed(0)
    model = BagOfTokens()
    whole = evaluate(model, toy_batches(64, 1, batch_size=32), torch.device("cpu"))
    halved = evaluate(RunsOutOfMemory(model, limit=0, eval_limit=8), toy_batches(64, 1, batch_size=32),
                      torch.device("cpu"))
    assert np.array_equal(whole.preds, halved.preds) and halved.loss == pytest.approx(whole.loss)


def test_out_of_memory_at_one_example_says_what_would_help():
    with pytest.raises(TrainingError, match=r"out of memory with one example of 6 tokens per micro-batch: lower "
                                            r"data.max_length, set trainer.gradient_checkpointing=true"):
        fit(RunsOutOfMemory(BagOfTokens(), limit=0), toy_batches(64, 0), toy_batches(32, 1), trainer_cfg(),
            torch.device("cpu"))


def test_on_oom_fail_fails_naming_the_step():
    with pytest.raises(TrainingError, match=r"out of memory at epoch 1, step 3, training micro-batches of 16 "
                                            r"examples of 6 tokens; trainer.on_oom=halve would halve them"):
        fit(RunsOutOfMemory(BagOfTokens(), limit=8, after=2), toy_batches(64, 0), toy_batches(32, 1),
            trainer_cfg(on_oom="fail"), torch.device("cpu"))


class TurnsNonFinite(nn.Module):
    """Logits of NaN at its `at`-th training forward when run under reduced-precision autocast (`always`: from
    then on, in fp32 too); records whether each training forward ran under autocast."""

    def __init__(self, model: nn.Module, at: int, always: bool = False):
        super().__init__()
        self.model, self.at, self.always, self.calls, self.autocast = model, at, always, 0, []

    def forward(self, input_ids, attention_mask=None):
        logits = self.model(input_ids, attention_mask)
        if not self.training:
            return logits
        self.calls += 1
        reduced = torch.is_autocast_enabled("cpu")
        self.autocast.append(reduced)
        bad = self.calls >= self.at if self.always else self.calls == self.at and reduced
        return logits * float("nan") if bad else logits


def test_a_nan_loss_under_bf16_goes_back_to_the_last_validation_and_on_in_fp32(caplog):
    model = TurnsNonFinite(BagOfTokens(), at=6)  # 4 steps an epoch: step 6 is in epoch 2
    saved: list = []
    with caplog.at_level(logging.WARNING, logger="bertcmp.train"):
        progress = fit(model, toy_batches(64, 0), toy_batches(32, 1), trainer_cfg(epochs=3), torch.device("cpu"),
                       dtype=torch.bfloat16, save_state=saved.append)
    assert progress.recovered == [{"what": "non-finite loss", "step": 6, "precision": "fp32", "from_step": 4,
                                   "was": "bfloat16"}]
    assert [r.epoch for r in progress.history] == [1, 2, 3] and all(math.isfinite(r.train_loss)
                                                                   for r in progress.history)
    assert model.autocast[:6] == [True] * 6 and not any(model.autocast[6:])  # fp32 from step 5 again
    assert len(model.autocast) == 6 + 8  # epochs 2 and 3 trained again from the state after epoch 1
    assert "going on in fp32 from step 4" in caplog.text and saved[-1].progress.recovered == progress.recovered


def test_a_nan_loss_before_any_validation_starts_over_in_fp32():
    model = TurnsNonFinite(BagOfTokens(), at=2)
    progress = fit(model, toy_batches(64, 0), toy_batches(32, 1), trainer_cfg(epochs=1), torch.device("cpu"),
                   dtype=torch.bfloat16)
    assert progress.recovered[0]["from_step"] == 0 and progress.step == 4 and model.autocast == [True, True] + \
        [False] * 4


@pytest.mark.parametrize("change", [dict(on_nonfinite="fail"), dict()])
def test_a_nan_loss_fails_when_not_healed_or_healed_once_already(change):
    model = TurnsNonFinite(BagOfTokens(), at=2, always=not change)  # fp32 does not help: NaN again
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 1, step \d"):
        fit(model, toy_batches(64, 0), toy_batches(32, 1), trainer_cfg(epochs=1, **change), torch.device("cpu"),
            dtype=torch.bfloat16)
