"""Metrics for translation models (two unpaired domains; CycleGAN): what ``deepgen eval`` reports
for a model that maps examples instead of sampling them.

For each direction (A -> B with ``direction=a2b``, B -> A with ``b2a``) the source domain's test
examples are translated and compared with the *target* domain: FID, KID, precision and recall
against the target's reference set (as for samples, :class:`~deepgen.evaluate.quality.SampleQuality`),
and, where the feature network is a classifier and both domains carry labels, the **label
agreement**: the fraction of translations that the classifier assigns to the source example's class.
Beside it stands the same classifier's accuracy on real test examples of the target domain, the
most agreement a perfect translator could show with that classifier, and its agreement on the
untranslated source examples (``untranslated_source``), what no translation at all would show: a
translator that keeps classes but changes style must beat it. A domain pair may name further
judges for a domain (:attr:`~deepgen.data.domains.DomainPair.judges`: a classifier and the view of
the domain's images it reads); each adds ``label_agreement_{direction}_{network}`` with its own
accuracy on real targets.
"""

from __future__ import annotations

import torch

from deepgen.data.base import Dataset
from deepgen.evaluate.likelihood import na
from deepgen.evaluate.quality import SampleQuality
from deepgen.models.base import GenerativeModel

METRICS = ("fid", "kid", "precision", "recall")


@torch.no_grad()
def translate_all(model: GenerativeModel, x: torch.Tensor, direction: str, batch_size: int = 256) -> torch.Tensor:
    """``model.translate`` over ``x`` in batches, on the model's device; results on the CPU."""
    dev = model.device
    parts = [
        model.translate(x[i : i + batch_size].to(dev), direction=direction).cpu() for i in range(0, len(x), batch_size)
    ]
    return torch.cat(parts)


def translation_metrics(
    model: GenerativeModel, ds: Dataset, *, features: str | None = None, n: int | None = None, seed: int = 0
) -> dict:
    """Labelled metrics of both directions (keys ``fid_a2b``, ``label_agreement_b2a``, ...) on up to
    ``n`` test examples of each source domain."""
    from deepgen.metrics.features import DomainClassifier, accuracy

    pair = ds.container
    out = {}
    for direction, src, dst in (("a2b", pair.a, pair.b), ("b2a", pair.b, pair.a)):
        x, y = src.test.x[:n], (None if src.test.y is None else src.test.y[:n])
        t = translate_all(model, x, direction)
        q = SampleQuality.for_dataset(dst, features)
        m = q.evaluate(t, seed)
        for key in METRICS:
            out[f"{key}_{direction}"] = {
                **m[key],
                "label": f"{m[key].get('label', key)} ({direction}, {len(t)} translations)",
            }
        key = f"label_agreement_{direction}"
        if isinstance(q.network, DomainClassifier) and y is not None and dst.test.y is not None:
            ceiling = accuracy(q.network, dst.test.x, dst.test.y)
            out[key] = {
                "value": accuracy(q.network, t, y),
                "label": f"{q.feature_label}: class of the translation = class of the source ({direction})",
                "classifier_accuracy_on_real_target": ceiling,
                "untranslated_source": accuracy(q.network, x, y),
            }
        else:
            out[key] = na("label agreement", "needs labels in both domains and a classifier feature network")
        judge = pair.judges.get(direction[-1])
        if judge is not None and y is not None and dst.test.y is not None:
            from deepgen.metrics.features import load_feature_network

            name, view = judge
            net = load_feature_network(name)
            out[f"{key}_{name}"] = {
                "value": accuracy(net, view(t), y),
                "label": f"{name} classifier (through the domain's view): class of the translation = "
                f"class of the source ({direction})",
                "classifier_accuracy_on_real_target": accuracy(net, view(dst.test.x), dst.test.y),
                "untranslated_source": accuracy(net, view(x), y),
            }
    return out
