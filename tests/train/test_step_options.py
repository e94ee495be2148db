"""Options of one training step: gradient accumulation, bf16 autocast, torch.compile, devices, and the
GPU bookkeeping (lagged divergence check, device-side metric sums) exercised on the CPU."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from deepgen import registry
from deepgen.data import DataSpec, load_dataset
from deepgen.data.base import Dataset, Split
from deepgen.errors import ConfigError
from deepgen.models.base import GenerativeModel
from deepgen.train import TrainConfig, Trainer, TrainingDiverged, accel, load_run
from deepgen.train.distributed import pick_device


@pytest.fixture(scope="module")
def moons():
    return load_dataset(DataSpec("moons", n_train=512))


def cfg(**kw):
    base = dict(steps=6, batch_size=32, progress=False, eval_every=0, log_every=1, ckpt_every=0, threads=1)
    return TrainConfig(**{**base, **kw})


class Net(GenerativeModel):
    """A small MLP regression-to-noise model trained with plain SGD (scale-sensitive, unlike Adam)."""

    family = "baseline"

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))

    def configure_optimizers(self, c):
        return {"main": torch.optim.SGD(self.parameters(), lr=c.lr)}

    def loss(self, x, y=None):
        err = (self.net(x) - x.flip(1)).pow(2).sum(1)
        return {"loss": err.mean(), "max_err": err.max().detach()}

    def sample(self, n, *, generator=None):
        return self.net(torch.randn(n, 2, generator=generator))


def train(ds, out, seed=0, **kw):
    torch.manual_seed(seed)
    m = Net(ds.info)
    t = Trainer(m, ds, cfg(**kw), out, plots=False, quiet=True)
    return m, t, t.fit()


def test_grad_accum_equals_one_big_batch(moons, tmp_path):
    with registry.temporary("test-net", Net):
        big, tb, _ = train(moons, tmp_path / "big", batch_size=64, lr=0.1)
        acc, ta, _ = train(moons, tmp_path / "acc", batch_size=16, grad_accum=4, lr=0.1)
        one, _, _ = train(moons, tmp_path / "one", batch_size=16, lr=0.1)
    for a, b, c in zip(big.parameters(), acc.parameters(), one.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
        assert not torch.allclose(a, c, atol=1e-4)  # a quarter of the batch is a different run
    assert ta.batches_drawn == 6 * 4 and tb.batches_drawn == 6
    rec = json.loads((tmp_path / "acc" / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["step"] == 1 and rec["loss"] > 0


def test_grad_accum_refused_for_own_train_step(moons, tmp_path):
    class OwnStep(Net):
        def train_step(self, x, y, ctx):
            out = self.loss(x)
            ctx.step(out["loss"])
            return out

    with registry.temporary("test-own-step", OwnStep):
        t = Trainer(OwnStep(moons.info), moons, cfg(grad_accum=2), tmp_path, plots=False, quiet=True)
        with pytest.raises(ConfigError, match="has its own train_step.*larger --batch-size") as e:
            t.fit()
        assert "\n" not in str(e.value)
        t = Trainer(OwnStep(moons.info), moons, cfg(compile=True), tmp_path, plots=False, quiet=True)
        with pytest.raises(ConfigError, match="--compile applies to models trained through loss"):
            t.fit()


def test_bf16_autocast_on_cpu(moons, tmp_path):
    seen = {}

    class Spy(Net):
        def loss(self, x, y=None):
            h = self.net[0](x)
            seen["forward"] = h.dtype  # linear layers run in bf16 under autocast
            out = super().loss(x)
            seen["grad_enabled_autocast"] = torch.is_autocast_enabled("cpu")
            return out

    with registry.temporary("test-spy", Spy):
        torch.manual_seed(0)
        m = Spy(moons.info)
        Trainer(m, moons, cfg(precision="bf16", lr=0.05), tmp_path / "bf", plots=False, quiet=True).fit()
        assert seen == {"forward": torch.bfloat16, "grad_enabled_autocast": True}
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in m.parameters())
        assert load_run(tmp_path / "bf").train_config.precision == "bf16"
        Trainer(Spy(moons.info), moons, cfg(), tmp_path / "fp", plots=False, quiet=True).fit()
        assert seen["forward"] == torch.float32


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_native_bfloat16_warns(moons, tmp_path, monkeypatch, capsys, native):
    """bf16 works everywhere on CPU, but without oneDNN's bf16 kernels it is slower than fp32: say so."""
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert (accel.precision_warning("bf16", cpu) is None) == native
    assert accel.precision_warning("fp32", cpu) is None
    with registry.temporary("test-net", Net):
        Trainer(Net(moons.info), moons, cfg(precision="bf16", steps=2), tmp_path, plots=False).fit()
    err = capsys.readouterr().err
    assert ("no native bfloat16" in err) == (not native)
    assert ("--precision fp32 is likely faster" in err) == (not native)


def test_compile_with_eager_backend(moons, tmp_path, monkeypatch):
    """The compile path end to end; "eager" traces with dynamo but skips inductor's ~20 s C++ build."""
    monkeypatch.setattr(accel, "COMPILE_BACKEND", "eager")
    with registry.temporary("test-net", Net):
        plain, _, _ = train(moons, tmp_path / "plain", steps=3, lr=0.1)
        compiled, t, _ = train(moons, tmp_path / "compiled", steps=3, lr=0.1, compile=True)
    assert not t._compile_unproven  # the first step ran through the compiled module
    for a, b in zip(plain.parameters(), compiled.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_compile_failure_is_one_line():
    from torch._dynamo.exc import BackendCompilerFailed

    err = accel.compile_failure(BackendCompilerFailed(lambda *a: None, RuntimeError("no C++ compiler\nmore"), None))
    assert isinstance(err, ConfigError) and "\n" not in str(err)
    assert "(RuntimeError: no C++ compiler); train without --compile" in str(err)
    assert accel.compile_failure(ValueError("a model bug")) is None  # the model's own errors pass through


def test_device_names():
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        pick_device("gpu")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1"):
            with pytest.raises(ConfigError, match="CUDA is not available.*--device cpu"):
                pick_device(name)
        assert pick_device("auto") == torch.device("cpu")


class Exploding(Net):
    calls = 0
    explode_at = 7  # the 8th loss (step 8) is NaN

    def loss(self, x, y=None):
        out = super().loss(x)
        if type(self).calls >= self.explode_at:
            out["loss"] = out["loss"] * float("nan")
        type(self).calls += 1
        return out


@pytest.mark.parametrize("host_sync", [True, False])  # False: the GPU path (check lagged by one step)
@pytest.mark.parametrize("explode_at, ckpt_every", [(7, 5), (9, 5)])  # mid-interval, and on a checkpoint step
def test_divergence_is_reported_at_its_step_in_both_modes(moons, tmp_path, host_sync, explode_at, ckpt_every):
    with registry.temporary("test-exploding-net", Exploding):
        Exploding.calls, Exploding.explode_at = 0, explode_at
        t = Trainer(Exploding(moons.info), moons, cfg(steps=20, ckpt_every=ckpt_every, log_every=3), tmp_path)
        t.callbacks, t._host_sync = [], host_sync
        with pytest.raises(TrainingDiverged, match=rf"loss became nan at step {explode_at + 1}.*step 5\) is kept"):
            t.fit()
        ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
        assert ckpt["step"] == 5
        logged = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert max(logged) < explode_at + 1  # nothing was logged from the diverged step on


def test_device_side_metrics_match_host_metrics(moons, tmp_path):
    logs = {}
    with registry.temporary("test-net", Net):
        for host_sync in (True, False):
            torch.manual_seed(0)
            t = Trainer(Net(moons.info), moons, cfg(steps=8, log_every=4), tmp_path / str(host_sync), plots=False)
            t.quiet, t._host_sync = True, host_sync
            t.fit()
            logs[host_sync] = [json.loads(line) for line in (tmp_path / str(host_sync) / "metrics.jsonl").open()]
    for a, b in zip(logs[True], logs[False], strict=True):
        assert a["step"] == b["step"]
        for k in ("loss", "max_err"):
            assert a[k] == pytest.approx(b[k], rel=1e-6)


@pytest.mark.parametrize("decode_once_bytes", [0, 64 << 20])
def test_training_reads_stored_codes_and_decodes_per_batch(tmp_path, monkeypatch, decode_once_bytes):
    """Stored codes are decoded per batch, or all at once when the decoded rows are small: the same
    updates either way as training on float32 rows."""
    import deepgen.train.batches as batches

    monkeypatch.setattr(batches, "DECODE_ONCE_BYTES", decode_once_bytes)
    digits = load_dataset(DataSpec("digits"))
    train = digits.train
    assert train.storage.dtype == torch.uint8
    calls = []
    decode = train.decode

    def spy(t):
        assert t.dtype == torch.uint8
        calls.append(len(t))
        return decode(t)

    ds = Dataset(digits.info, Split(train.storage, train.y, levels=train.levels), digits.val, digits.test)
    ds.train.decode = spy
    with registry.temporary("test-digits-net", DigitsNet):
        torch.manual_seed(0)
        a = DigitsNet(ds.info)
        Trainer(a, ds, cfg(steps=3), tmp_path / "coded", plots=False, quiet=True).fit()
        torch.manual_seed(0)
        b = DigitsNet(ds.info)
        plain = Dataset(digits.info, Split(train.x, train.y), digits.val, digits.test)  # float32 rows
        Trainer(b, plain, cfg(steps=3), tmp_path / "plain", plots=False, quiet=True).fit()
    if decode_once_bytes:  # every row once, before the initialisation batch
        assert calls == [len(train)]
    else:  # the initialisation batch, then one per step
        assert calls == [32] * 4
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


class DigitsNet(GenerativeModel):
    family = "baseline"

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.lin = nn.Linear(info.dim, info.dim)

    def loss(self, x, y=None):
        return {"loss": (self.lin(x.flatten(1)) - x.flatten(1)).pow(2).mean()}

    def sample(self, n, *, generator=None):
        return torch.rand(n, *self.info.shape, generator=generator)


@pytest.mark.parametrize(
    "name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("adagrad", torch.optim.Adagrad)]
)
def test_optimizer_option_builds_that_optimizer(name, cls):
    from deepgen.models.base import build_optimizer

    p = nn.Parameter(torch.ones(3))
    opt = build_optimizer([p], cfg(optimizer=name, lr=0.5, weight_decay=0.01))
    assert type(opt) is cls and opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["weight_decay"] == 0.01
    # one step moves the parameter against the gradient of sum(p): every optimiser's first step does
    p.grad = torch.ones(3)
    opt.step()
    assert (p < 1).all()


def test_adagrad_is_invariant_to_the_scale_of_the_loss():
    """Why the MADE authors' Adagrad learning rate carries over to deepgen's per-dimension losses."""
    from deepgen.models.base import build_optimizer

    out = []
    for scale in (1.0, 1 / 784):
        torch.manual_seed(0)
        p = nn.Parameter(torch.randn(5))
        opt = build_optimizer([p], cfg(optimizer="adagrad", lr=0.1))
        for _ in range(5):
            opt.zero_grad()
            (scale * (p - 2).pow(2).sum()).backward()
            opt.step()
        out.append(p.detach().clone())
    torch.testing.assert_close(out[0], out[1], rtol=1e-4, atol=1e-5)


def test_unknown_optimizer_and_rbm_refuse(tmp_path):
    with pytest.raises(ConfigError, match="adagrad"):
        cfg(optimizer="sgd")
    from deepgen.models.energy.rbm import RBM

    ds = load_dataset(DataSpec("digits", binarize="threshold"))
    with pytest.raises(ConfigError, match="momentum SGD"):
        RBM(ds.info).configure_optimizers(cfg(optimizer="adagrad"))
