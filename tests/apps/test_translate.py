"""Translation as an application: which models offer which method (asked from capabilities), what each
method computes, and the scores (label agreement against the untranslated floor, FID)."""

from __future__ import annotations

import pytest
import torch

from deepgen.apps.translate import available_methods, translate, translation_scores
from deepgen.errors import ConfigError
from deepgen.metrics.features import load_feature_network
from deepgen.registry import get_model_class
from deepgen.train.run import build_model


def _model(name, info):
    return build_model(name, info, seed=0, options=get_model_class(name).test_options).eval()


def test_methods_follow_capabilities(digits, digit_domains):
    assert available_methods(_model("ddpm", digits.info)) == ["edit"]
    assert available_methods(_model("vae", digits.info)) == ["reconstruct"]
    assert available_methods(_model("cyclegan", digit_domains.info)) == ["translate"]


def test_each_method_computes_what_it_says(digits, digit_domains):
    x = digits.test.x[:6]
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    ddpm = _model("ddpm", digits.info)
    assert torch.equal(translate(ddpm, x, "edit", strength=0.0), x)  # strength 0 keeps the source
    opts = {"sampler": "ddim", "steps": 3}
    r = translate(ddpm, x, "edit", strength=0.6, generator=g(), options=opts)
    assert torch.equal(r, ddpm.edit(x, 0.6, generator=g(), **opts))  # one batch: the same random numbers
    assert torch.equal(r * 16, (r * 16).round()) and not torch.equal(r, x)
    assert translate(ddpm, x, "edit", strength=0.6, generator=g(), options=opts, batch_size=4).shape == x.shape
    vae = _model("vae", digits.info)
    assert torch.allclose(translate(vae, x, "reconstruct"), vae.decode(vae.encode(x)))
    cg = _model("cyclegan", digit_domains.info)
    assert torch.equal(translate(cg, x, "translate", direction="b2a"), cg.translate(x, direction="b2a"))
    with pytest.raises(ConfigError, match="needs the capability encode"):
        translate(ddpm, x, "reconstruct")
    with pytest.raises(ConfigError, match="unknown translation method"):
        translate(ddpm, x, "morph")


def test_scores_put_agreement_beside_the_untranslated_floor(digits):
    judge = load_feature_network("deepgen-digits")
    x, y = digits.test.x[:200], digits.test.y[:200]
    same = translation_scores(x, x, y, judge)
    assert same["label_agreement"] == same["untranslated_source"] > 0.9 and same["n"] == 200
    flipped = translation_scores(x.flip(-1), x, y, judge, digits, features="deepgen-digits")
    assert flipped["label_agreement"] < same["label_agreement"]
    assert flipped["fid"]["value"] > 0 and "kid" in flipped
