"""Write the comparison as ``table.md``, ``table.csv`` and a self-contained ``report.html``."""

from __future__ import annotations

import base64
import csv
import html
import math
from pathlib import Path

from deepgen.data.toy2d import TOY2D
from deepgen.models.base import FAMILIES

#: Row order: the real-data reference first, then the families in the order models declare them.
FAMILY_ORDER = ["reference", *FAMILIES]


def _v(row: dict, key: str):
    return row["metrics"].get(key, {}).get("value")


def _num(v, digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if abs(v) < 0.01 else f"{v:.{digits}f}"


def _density(row: dict) -> str:
    """Whether the model has an exact density, and, separately, what the reported number is.

    A flow on discrete data has an exact (continuous) density but reports its dequantisation
    bound: "yes (bound reported)", never "no (bound)".
    """
    kind = row.get("density_kind")
    exact = row.get("has_exact_density", kind == "exact")
    if exact:
        return "yes" if kind == "exact" else f"yes ({kind} reported)"
    return {
        "lower bound": "no (bound)",
        "estimate": "no (estimate)",
        "unnormalised": "no (unnormalised)",
        "none": "no",
    }.get(kind, kind or "no")


def _nll_cell(row: dict, discrete: bool) -> str:
    m = row["metrics"]
    key = "bpd" if discrete else "nll"
    e = m.get(key) or {}
    if e.get("value") is None:
        if row.get("family") == "reference":
            return f"{_num(m['entropy']['value'])} (entropy)" if m.get("entropy") else ""
        return "n/a"
    kind = {"exact": "exact", "lower bound": "bound", "estimate": "est."}.get(e.get("kind"), e.get("kind", ""))
    # standard error of the mean over test examples, with any Monte Carlo error in quadrature
    se = math.sqrt((e.get("sem") or 0.0) ** 2 + (e.get("mc_stderr") or 0.0) ** 2)
    pm = f" ± {_num(se, 2)}" if se > 0 and math.isfinite(se) else ""
    extra = ", given y" if e.get("conditional") else ""  # -log p(x|y): not comparable with -log p(x)
    if e.get("n_total") and e.get("n") != e["n_total"]:  # a budgeted subset of the test split
        extra += f", {e['n']:,} of {e['n_total']:,}"
    return f"{_num(e['value'])}{pm} ({kind}{extra})"


def _pm(row: dict, key: str, scale: float, digits: int) -> str:
    """``value ± s.e.`` (scaled), or the value alone when the metric carries no error."""
    e = row["metrics"].get(key) or {}
    v = e.get("value")
    if v is None:
        return "n/a"
    if v == float("inf"):
        return "inf"
    se = e.get("se")
    if se is None:
        return f"{scale * v:.{digits}f}"
    return f"{scale * v:.{digits}f} ± {scale * se:.{digits}f}"


def _short_num(v: float) -> str:
    """3 significant figures with k/M suffixes: 177,263 -> 177k."""
    for div, suf in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suf}"
    return f"{v:.3g}"


def _speed(row: dict, key: str, lo: str, hi: str) -> str:
    """A throughput's median with its spread over timing windows/batches: ``177k (150k-190k)``."""
    e = row["metrics"].get(key) or {}
    v = e.get("value")
    if v is None:
        return "n/a"
    if e.get(lo) is None or e.get(hi) is None:
        return _short_num(v)
    return f"{_short_num(v)} ({_short_num(e[lo])}–{_short_num(e[hi])})"


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _modes_cell(row: dict) -> str:
    e = row["metrics"].get("modes") or {}
    if e.get("value") is None:
        return "n/a"
    return f"{e['value']}/{e['total']}" if e.get("total") else str(e["value"])


def _model_cell(row: dict) -> str:
    """The model's name and, when they are not its defaults, the sampling options that made the row."""
    how = row.get("sampling")
    return f"{row.get('model', '')} ({how})" if how else row.get("model", "")


def columns(info) -> list[tuple[str, callable]]:
    """(header, cell function) for this kind of data."""
    discrete = info.is_discrete
    cols = [
        ("Family", lambda r: r.get("family", "")),
        ("Model", _model_cell),
        ("Train (ex/s)", lambda r: _speed(r, "train_speed", "q25", "q75") if r.get("family") != "reference" else ""),
        (
            "Sample (samples/s)",
            lambda r: _speed(r, "sampling_speed", "min", "max") if r.get("family") != "reference" else "",
        ),
        ("Params", lambda r: _num(_v(r, "parameters")) if r.get("family") != "reference" else ""),
        ("Exact density", lambda r: _density(r) if r.get("family") != "reference" else ""),
        ("NLL (bits/dim)" if discrete else "NLL (nats)", lambda r: _nll_cell(r, discrete)),
    ]
    if info.is_image:
        cols += [
            ("FID ± s.e.", lambda r: _pm(r, "fid", 1.0, 2)),
            ("KID x1e3 ± s.e.", lambda r: _pm(r, "kid", 1e3, 1)),
            ("Recall", lambda r: _num(_v(r, "recall"))),
            ("Coverage", lambda r: _num(_v(r, "coverage"))),
        ]
    elif info.name in TOY2D:
        cols += [
            ("-log p_data (nats)", lambda r: _pm(r, "nll_data", 1.0, 3)),
            ("HQ samples", lambda r: _pct(_v(r, "high_quality"))),
            ("Modes", _modes_cell),
            ("Mode KL", lambda r: _num(_v(r, "mode_kl"))),
            ("Recall", lambda r: _num(_v(r, "recall"))),
            ("MMD² x1e3", lambda r: "n/a" if _v(r, "mmd2") is None else f"{1e3 * _v(r, 'mmd2'):.2f}"),
        ]
    else:
        cols += [
            ("MMD² x1e3", lambda r: "n/a" if _v(r, "mmd2") is None else f"{1e3 * _v(r, 'mmd2'):.2f}"),
            ("Precision", lambda r: _num(_v(r, "precision"))),
            ("Recall", lambda r: _num(_v(r, "recall"))),
            ("Coverage", lambda r: _num(_v(r, "coverage"))),
        ]
    cols.append(("Train time (s)", lambda r: _num(_v(r, "train_time"), 1) if r.get("family") != "reference" else ""))
    cols.append(("Peak mem (MiB)", lambda r: _num(_v(r, "peak_memory"), 0) if r.get("family") != "reference" else ""))
    return cols


def ordered(rows: list[dict], reference: dict) -> list[dict]:
    def key(r):
        fam = r.get("family", "")
        return (FAMILY_ORDER.index(fam) if fam in FAMILY_ORDER else len(FAMILY_ORDER), r.get("model", ""))

    return [reference] + sorted(rows, key=key)


def _load_notes(result) -> list[str]:
    """Say so when other processes competed for the cores while a row was timed."""
    from deepgen.metrics.cost import busy_machine_note

    out = []
    for r in result.rows:
        loads = [r["metrics"].get(k, {}).get("load_average") for k in ("train_speed", "sampling_speed")]
        note = busy_machine_note(max((v for v in loads if v is not None), default=None))
        if note:
            out.append(f"{r['model']}: {note}.")
    return out


def _threads(n: int) -> str:
    return f"{n} thread" + ("s" if n != 1 else "")


def notes(result, info) -> list[str]:
    feat = next(
        (
            r["metrics"]["fid"]["label"]
            for r in result.rows + [result.reference]
            if r["metrics"].get("fid", {}).get("value") is not None
        ),
        None,
    )
    n = result.reference.get("n_samples")
    limit = getattr(result, "time_limit", None)
    out = [
        f"Same data, {'step budget, time limit' if limit else 'steps'}, batch size and seed for every model; "
        "each model uses its own default learning rate.",
        f"Every row's sample-quality metrics use the same number of samples, n = {n:,} (the real-data row "
        "included): FID and k-NN metrics depend on n. ± is one standard error (FID: bootstrap over samples; "
        "KID: jackknife over both sets; NLL: over test examples and Monte Carlo draws)."
        if n
        else "",
        "Train: median training examples/s over logged windows after the first (warm-up), with the interquartile "
        "range. Sample: median samples/s over at least five timed batches after a warm-up draw, with min–max.",
        *_load_notes(result),
        f"Trained {result.jobs} models at a time (--jobs {result.jobs}), each in its own process with "
        f"{_threads(result.threads_per_job)}: speeds are those of {_threads(result.threads_per_job)} beside "
        "other jobs, and peak memory is each model's own process."
        if result.jobs > 1
        else "",
        "NLL labels: exact = log-likelihood; bound = lower bound on log p(x) (ELBO or dequantisation), so the "
        "true NLL is lower; est. = importance-sampled estimate. GANs define no density.",
    ]
    for name, reason in getattr(result, "skipped", {}).items():
        out.append(f"Not compared: {name} does not apply to these data ({reason}).")
    if info.is_discrete:
        out.append(
            f"bits/dim = NLL / (D ln 2) with D = {info.dim}, on {info.levels}-level data (including the "
            "dequantisation where a model uses one)."
        )
    if feat:
        out.append(
            f"Sample quality uses {feat.split('(', 1)[1].rstrip(')')}; reference set = training data. "
            "These are not Inception FIDs."
        )
    kid = result.reference["metrics"].get("kid") or {}
    if kid.get("value") is not None and kid.get("se") and abs(kid["value"]) > 2 * kid["se"]:
        out.append(
            f"The real-data KID ({1e3 * kid['value']:.1f} ± {1e3 * kid['se']:.1f} x1e-3) is more than two standard "
            "errors from 0: this held-out split differs from the reference by chance more than usual (over random "
            "splits of digits, ± 2 s.e. covers 0 in 98% of cases; docs/benchmarks.md). Read model KIDs against "
            "this row, not against 0."
        )
    out.append(
        "The 'real data (held out)' row scores real data the reference set does not contain (images: the "
        "test split; vectors: the training split against the test split): the floor a model can expect."
    )
    if result.jobs == 1:
        out.append("Peak mem: the process's resident-set high-water mark during that model's training and evaluation.")
    if limit:
        reached = "; ".join(f"{r['model']} {' + '.join(f'{s:,}' for s in r.get('steps', []))}" for r in result.rows)
        out.append(
            f"Time limit: each model trained for at most {limit:g} s (its training loop; a multi-stage model's "
            f"stages share it evenly) or the step budget, whichever came first. Steps reached: {reached}."
        )
    staged = [r for r in result.rows if r.get("stages")]
    if staged:
        out.append(
            "Trained in stages, each with the step budget, each from the previous stage's run; the row is the "
            "last stage, its train time their sum: "
            + "; ".join(f"{r['model']} ({' -> '.join(r['stages'])})" for r in staged)
            + "."
        )
    return out


def write_reports(result, ds, meta: dict) -> dict[str, str]:
    info = ds.info
    cols = columns(info)
    rows = ordered(result.rows, result.reference)
    table = [[fn(r) for _, fn in cols] for r in rows]
    headers = [h for h, _ in cols]
    out = result.out
    md = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    md += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in table]
    md += [""] + [f"- {n}" for n in notes(result, info) if n]
    title = f"deepgen compare on {info.describe()}"
    (out / "table.md").write_text(f"# {title}\n\n" + "\n".join(md) + "\n")
    with open(out / "table.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(headers)
        w.writerows(table)
    (out / "report.html").write_text(render_html(title, headers, table, rows, result, info, meta))
    return {
        "markdown": str(out / "table.md"),
        "csv": str(out / "table.csv"),
        "html": str(out / "report.html"),
    }


def _img(path: str | None, alt: str, cls: str = "") -> str:
    """An embedded PNG (the report is one self-contained file), or a red note when it is missing."""
    if not path or not Path(path).is_file():
        return f'<div class="missing">{html.escape(alt)}: no image</div>'
    data = base64.b64encode(Path(path).read_bytes()).decode()
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:14px;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0}td:nth-child(1),td:nth-child(2){text-align:left}
tr.reference td{background:#f8f8e8;font-style:italic}
.cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;padding:.5em;border-radius:6px}
.card img{max-width:360px;image-rendering:pixelated;display:block}
.card img.loss{max-width:760px;image-rendering:auto}.card h3{margin:.2em 0;font-size:15px}
.missing{color:#a00}.warn{color:#a00;font-weight:bold}.ok{color:#070}small{color:#666}
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var el = document.getElementById('image-status');
  el.textContent = ok + ' of ' + imgs.length + ' images loaded';
  el.setAttribute('data-loaded', ok); el.setAttribute('data-total', imgs.length);
  el.className = ok === imgs.length ? 'ok' : 'warn';
});
"""


def _metric_text(m: dict) -> str:
    return _num(m["value"]) if m["value"] is not None else "n/a — " + m.get("reason", "")


def render_html(title, headers, table, rows, result, info, meta) -> str:
    e = html.escape
    thead = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for r, cells in zip(rows, table):
        cls = ' class="reference"' if r.get("family") == "reference" else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    cards = []
    if rows[0].get("samples_png"):  # the real data first, drawn like the samples beside it
        cards.append(
            f'<div class="card"><h3>real data (held out)</h3>{_img(rows[0]["samples_png"], "real data")}</div>'
        )
    for r in rows[1:]:
        label = f"{_model_cell(r)} ({r['family']})"
        imgs = _img(r.get("samples_png"), f"{r['model']} samples")
        if r.get("density_png"):
            imgs += _img(r["density_png"], f"{r['model']} density")
        loss = Path(r.get("run", "")) / "loss.png"
        imgs += _img(str(loss), f"{r['model']} loss curve", "loss") if loss.is_file() else ""
        cards.append(f'<div class="card"><h3>{e(label)}</h3>{imgs}</div>')
    detail = []
    for r in rows:
        items = "".join(f"<li>{e(m['label'])}: {e(_metric_text(m))}</li>" for m in r["metrics"].values())
        detail.append(f"<details><summary>{e(r['model'])}: all metrics</summary><ul>{items}</ul></details>")
    settings = (
        f"{meta['steps']} steps"
        + (f" or {meta['time_limit']:g} s each" if meta.get("time_limit") else "")
        + f", batch {meta['batch_size']}, seed {meta['seed']}, torch {meta['torch']}, "
        + (
            f"{meta['threads']} threads"
            if meta.get("jobs", 1) == 1
            else f"{meta['jobs']} jobs x {_threads(meta['threads'])}"
        )
        + f", {meta['date']}"
    )
    note_items = "".join(f"<li>{e(n)}</li>" for n in notes(result, info) if n)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{CSS}</style></head>
<body>
<h1>{e(title)}</h1>
<p><small>{e(settings)} · <span id="image-status">images not checked (JavaScript off)</span></small></p>
<table><thead><tr>{thead}</tr></thead><tbody>{"".join(body)}</tbody></table>
<ul>{note_items}</ul>
<h2>Samples</h2>
<div class="cards">{"".join(cards)}</div>
<h2>Every metric</h2>
{"".join(detail)}
<script>{SCRIPT}</script>
</body></html>
"""
