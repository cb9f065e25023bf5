"""Intermediates benchmark: storage, capture overhead, and query time/agreement per codec.

Two workloads built from bundled data (scikit-learn's digits, no download):

1. A CNN (4 convolutions) trained on digits upscaled to 32×32 and augmented
   (shifts, noise) to N examples; every layer captured per codec; then 10
   checkpoints fine-tuned with the first convolutions frozen.
2. 50 scikit-learn pipelines (10 templates of 5–15 stages × 5 hyperparameter
   settings) sharing stages; every stage of every pipeline captured.

Prints, per codec: bytes against raw float32, capture time against plain
inference, and per query type the time reading against re-running and the
answer's agreement with the exact answer. A few minutes by default (2,000
examples, one repeat); `--full` is the issue's size (10,000 examples, median
of three, both pipeline codecs), about half an hour on two cores:

    .venv/bin/python benchmarks/intermediates.py [--full] [--examples N] [--repeats N] [--skip-cnn]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from typing import Any

import numpy as np
import torch
from torch import nn

import mlkeep
from mlkeep.intermediates import parse_codec
from mlkeep.intermediates.queries import cka, knn, overlap, topk

CODECS = ["exact", "float16", "kbit(8)", "kbit(8,quantile)", "kbit(4)", "pool(2)+kbit(8)", "threshold(0)"]


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv3, self.relu3 = nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        self.conv4, self.relu4, self.pool4 = nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.flat, self.fc1, self.relu5, self.fc2 = nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.conv3(x))
        x = self.pool4(self.relu4(self.conv4(x)))
        return self.fc2(self.relu5(self.fc1(self.flat(x))))


FROZEN = ("conv1", "conv2", "conv3")


def digits32(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    base = torch.nn.functional.interpolate(torch.from_numpy((X / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8),
                                           size=(32, 32), mode="bilinear", align_corners=False)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(X), n)
    out = base[idx].numpy().copy()
    shifts = rng.integers(-2, 3, (n, 2))
    for i, (dy, dx) in enumerate(shifts):
        out[i] = np.roll(out[i], (dy, dx), axis=(1, 2))
    out += rng.normal(0, 0.02, out.shape).astype(np.float32)
    return out.astype(np.float32), y[idx]


def train(net: nn.Module, X: np.ndarray, y: np.ndarray, steps: int, seed: int, lr: float = 3e-3) -> None:
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(X), (128,))
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
        opt.step()
    net.eval()


def plain_inference(net: nn.Module, X: np.ndarray, batch: int = 256) -> float:
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(X), batch):
            net(torch.from_numpy(X[s : s + batch]))
    return time.perf_counter() - t0


def median(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def codec_for(spec: str, layer: str, shapes: dict[str, tuple[int, ...]]) -> str:
    """Pooling applies to maps only; flat layers get the value codec alone."""
    if spec.startswith("pool") and len(shapes[layer]) != 3:
        return spec.split("+", 1)[1]
    return spec


def cnn_workload(store: Any, n: int, repeats: int) -> None:
    inter = store.intermediates
    X, y = digits32(n)
    net = CNN()
    train(net, X, y, steps=300, seed=0)
    acc = (net(torch.from_numpy(X[:2000])).argmax(1).numpy() == y[:2000]).mean()
    ds = store.get_dataset(mlkeep_log(store, X, y))
    layers = inter.layers(net)
    shapes = {}
    hooks = [net.get_submodule(l).register_forward_hook(lambda m, i, o, l=l: shapes.__setitem__(l, tuple(o.shape[1:])))
             for l in layers]
    with torch.no_grad():
        net(torch.from_numpy(X[:2]))
    for h in hooks:
        h.remove()
    t_plain = statistics.median(plain_inference(net, X) for _ in range(repeats))
    print(f"\n## CNN: {n} digits 32×32, {len(layers)} layers captured, accuracy {acc:.2f}, plain inference {t_plain:.2f}s")
    deep, early, probe_layers = "relu5", "relu1", ("relu4", "relu5")
    captures: dict[str, dict[str, Any]] = {}
    exact_vals: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(1)
    print("| codec | stored / raw float32 | ratio | capture / plain | top-k overlap | kNN overlap | |ΔCKA| |")
    print("|---|---|---|---|---|---|---|")
    for spec in CODECS:
        codecs = {l: codec_for(spec, l, shapes) for l in layers}
        # plain inference timed right before and after each capture: the machine's load drifts
        before = plain_inference(net, X)
        t_cap, got = median(lambda: inter.capture(net, ds, codec=codecs, repo=f"cnn-{spec}"), 1)
        t_plain = (before + plain_inference(net, X)) / 2
        captures[spec] = got
        raw = sum(i.raw_bytes for i in got.values())
        stored = sum(i.new_bytes for i in got.values())
        if spec == "exact":
            exact_vals = {l: inter.get(got[l], source="read") for l in (deep, early, *probe_layers)}
        tk, kn, dcka = agreement(inter, got, exact_vals, deep, early, probe_layers, shapes, rng)
        print(f"| {spec} | {stored / 1e6:.1f} MB / {raw / 1e6:.1f} MB | {raw / max(stored, 1):.1f}× | "
              f"{t_cap:.2f}s / {t_plain:.2f}s = {t_cap / t_plain:.1f}× | {tk:.3f} | {kn:.3f} | {dcka:.4f} |")
    query_times(inter, captures["kbit(8)"], deep, early, repeats)
    checkpoints(store, net, ds, X, y, layers, shapes)


def mlkeep_log(store: Any, X: np.ndarray, y: np.ndarray) -> str:
    from mlkeep.tracking.datasets import log_dataset

    return log_dataset(store.db, store.objects, X, targets=y, name="digits32").id


def agreement(inter: Any, got: dict[str, Any], exact: dict[str, np.ndarray], deep: str, early: str,
              probe: tuple[str, str], shapes: dict[str, tuple[int, ...]], rng: Any) -> tuple[float, float, float]:
    tks, kns = [], []
    for layer in (deep, early):
        vals = inter.get(got[layer], source="read")
        ref = exact[layer]
        codec = parse_codec(got[layer].codec)
        ref_cols = codec.transform(ref, shapes[layer]) if codec.pool else ref
        live = np.flatnonzero(ref_cols.max(0) > 0)
        for j in rng.choice(live, min(20, len(live)), replace=False):
            tks.append(overlap(topk(vals[:, j], 20), topk(ref_cols[:, j], 20)))
        for r in rng.choice(len(vals), 20, replace=False):
            kns.append(overlap(knn(vals, vals[r], 10, exclude=int(r))[0], knn(ref, ref[r], 10, exclude=int(r))[0]))
    a, b = (inter.get(got[p], source="read") for p in probe)
    dcka = abs(cka(a, b) - cka(exact[probe[0]], exact[probe[1]]))
    return float(np.mean(tks)), float(np.mean(kns)), dcka


def query_times(inter: Any, got: dict[str, Any], deep: str, early: str, repeats: int) -> None:
    """Each query read from storage, re-run from the model, and as the cost model chooses, in turns.

    A read goes through a warm query engine (manifests parsed, read threads started, pandas imported), but
    every chunk it touches is read from the object store, checked against its hash and decoded again; a
    re-run checks out the model version, loads the dataset and runs it up to the layer, every time. CKA's
    self terms are kept in the records by the first whole-layer CKA query: that one is timed on its own.
    """
    import os

    repeats = max(repeats, 3)  # a read takes milliseconds: one timing of it is one scheduler hiccup away
    print(f"\n### Query time, kbit(8): reading vs re-running the model (median of {repeats} runs, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print("| query | layer | read | rerun | rerun / read | cost model chose | auto time |")
    print("|---|---|---|---|---|---|---|")
    cases = [
        ("get row 7", lambda l, s: inter.get(got[l], rows=[7], source=s)),
        ("topk neuron 3, k=20", lambda l, s: inter.topk(got[l], 3, 20, source=s)),
        ("knn row 7, k=10", lambda l, s: inter.knn(got[l], 7, 10, source=s)),
        ("stats by class", lambda l, s: inter.stats(got[l], source=s)),
    ]
    for name, fn in cases:
        for layer in (deep, early):
            t_read, _ = median(lambda: fn(layer, "read"), repeats)
            t_rerun, _ = median(lambda: fn(layer, "rerun"), repeats)
            t_auto, _ = median(lambda: fn(layer, "auto"), repeats)
            print(f"| {name} | {layer} | {t_read * 1e3:.1f} ms | {t_rerun * 1e3:.1f} ms | {t_rerun / t_read:.1f}× | "
                  f"{inter.last_source} | {t_auto * 1e3:.1f} ms |")
    # Re-running for a similarity of two layers of one model is one pass up to the deeper one: both come out
    # of it. That pass (not two re-runs, as mlkeep's source="rerun" does) is the anchor.
    gaps: list[str] = []
    for a, b in (("relu4", deep), (deep, "fc2")):
        def cka(s: str) -> float:
            return float(inter.similarity(got[a], got[b], source=s))

        t_first, first = median(lambda: cka("read"), 1)
        t_read, kept = median(lambda: cka("read"), repeats)
        t_rerun, _ = median(lambda: inter.get(got[b], source="rerun"), repeats)
        t_auto, _ = median(lambda: cka("auto"), repeats)
        for label, t in (("first query, self terms computed", t_first), ("self terms kept", t_read)):
            print(f"| CKA {a} vs {b}, {label} | both | {t * 1e3:.1f} ms | {t_rerun * 1e3:.1f} ms | "
                  f"{t_rerun / t:.1f}× | {inter.last_source} | {t_auto * 1e3:.1f} ms |")
        exact = cka64(inter.get(got[a], source="read"), inter.get(got[b], source="read"))
        gaps.append(f"{a} vs {b} {max(abs(first - exact), abs(kept - exact)):.1e}")
    print(f"\nCKA answers (float32 products; with kept self terms, the cross term on the 8-bit codes) against "
          f"float64 CKA of the same stored values: |Δ| ≤ {', '.join(gaps)}")


def cka64(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA in float64, every product computed: the reference the query's answer is held to."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def checkpoints(store: Any, net: nn.Module, ds: Any, X: np.ndarray, y: np.ndarray, layers: list[str],
                shapes: dict[str, tuple[int, ...]]) -> None:
    inter = store.intermediates
    raw = stored = 0
    t0 = time.perf_counter()
    for spec in ("kbit(8)", "pool(2)+kbit(8)"):
        raw = stored = 0
        captured: list[Any] = []
        model = copy.deepcopy(net)
        for name, p in model.named_parameters():
            p.requires_grad = not name.startswith(FROZEN)
        for k in range(10):
            train(model, X, y, steps=20, seed=100 + k)
            got = inter.capture(model, ds, codec={l: codec_for(spec, l, shapes) for l in layers}, repo=f"ft-{spec}")
            raw += sum(i.raw_bytes for i in got.values())
            stored += sum(i.new_bytes for i in got.values())
            captured += got.values()
        every = referenced_bytes(store, captured)
        print(f"\n10 checkpoints, {', '.join(FROZEN)} frozen, {spec}: {stored / 1e6:.1f} MB new in a store that "
              f"holds the base model's capture, for {raw / 1e6:.0f} MB raw float32 = {raw / stored:.1f}×; every "
              f"object the 10 captures use (frozen layers once): {every / 1e6:.1f} MB = {raw / every:.1f}× "
              f"({time.perf_counter() - t0:.0f}s)")


def referenced_bytes(store: Any, captured: list[Any]) -> int:
    """Stored bytes of every distinct object the intermediates use: their chunks and their deltas' bases,
    wherever they were first written (a frozen layer counts once, not zero times)."""
    from mlkeep.intermediates.storage import get_manifest, used_objects

    sizes: dict[str, int] = {}
    for item in captured:
        sizes.update(used_objects(store.objects, get_manifest(store.objects, item.manifest)))
    return sum(sizes.values())


def pipelines_workload(store: Any, codecs: list[str]) -> None:
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_classif
    from sklearn.kernel_approximation import RBFSampler
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, MaxAbsScaler, MinMaxScaler, Normalizer, StandardScaler

    X, y = load_digits(return_X_y=True)
    inter = store.intermediates
    common = [("var", VarianceThreshold()), ("scale", StandardScaler())]
    pool = [("minmax", MinMaxScaler()), ("maxabs", MaxAbsScaler()), ("tanh", FunctionTransformer(np.tanh)),
            ("norm", Normalizer()), ("std2", StandardScaler())]

    def template(t: int, h: int) -> Pipeline:
        rng = np.random.default_rng(t)
        middle = [pool[i] for i in rng.choice(len(pool), 1 + t % 5, replace=True)]
        middle = [(f"{name}{j}", copy.deepcopy(est)) for j, (name, est) in enumerate(middle)]
        reduce = [("pca", PCA(20 + 4 * t, random_state=0)), ("svd", TruncatedSVD(10 + 2 * t, random_state=0)),
                  ("kbest", SelectKBest(f_classif, k=20 + 3 * t))][t % 3]
        tail = [("rbf", RBFSampler(gamma=0.01 * (1 + t), n_components=32 * (1 + t % 3), random_state=0)),
                ("post", StandardScaler())][: 1 + t % 2] + [(f"extra{j}", Normalizer()) for j in range(t // 2)]
        clf = ("clf", LogisticRegression(C=10.0 ** (h - 2), max_iter=100, tol=1e-3) if t % 2
               else RidgeClassifier(alpha=10.0 ** (h - 2)))
        return Pipeline([*copy.deepcopy(common), *middle, reduce, *tail, clf])

    ds = store.get_dataset(mlkeep_log(store, X.astype(np.float32), y))
    t0 = time.perf_counter()
    models = {(t, h): template(t, h).fit(X.astype(np.float32), y) for t in range(10) for h in range(5)}
    t_fit = time.perf_counter() - t0
    for codec in codecs:
        raw = stored = 0
        t_cap = 0.0
        captured: list[Any] = []
        for (t, _h), model in models.items():
            t0 = time.perf_counter()
            got = inter.capture(model, ds, codec=codec, repo=f"pipe{t}-{codec}")
            t_cap += time.perf_counter() - t0
            captured += got.values()
            raw += sum(i.raw_bytes for i in got.values())
            stored += sum(i.new_bytes for i in got.values())
        every = referenced_bytes(store, captured)
        print(f"\n## 50 scikit-learn pipelines on digits ({len(captured)} stages), {codec}, every stage materialized: "
              f"{stored / 1e6:.2f} MB new for {raw / 1e6:.0f} MB raw float32 = {raw / stored:.0f}× (every object "
              f"the stages use: {every / 1e6:.2f} MB = {raw / every:.0f}×); capture {t_cap:.1f}s (fits {t_fit:.1f}s)")
        cost_model_figures(store, captured, raw)


def cost_model_figures(store: Any, captured: list[Any], raw: int) -> None:
    """Storage when the cost model leaves unmaterialized what is cheaper to recompute than to keep, at a few
    thresholds (seconds saved per GB stored), and what a query on a stage it dropped then costs and returns
    (recomputed from the pipeline's version and dataset, against the values that were stored)."""
    inter = store.intermediates
    rng = np.random.default_rng(3)
    probes = {i.id: inter.get(i, source="read") for i in rng.choice(captured, 40, replace=False)}
    print("\n### Cost model: stages left unmaterialized when γ = (t_rerun − t_read)·n_queries / GB ≤ threshold "
          "(same 50 pipelines)")
    print("| threshold (s/GB) | stages stored | stored (every object used) | ratio | a dropped stage's get: "
          "recompute / read | max |recomputed − stored| / codec bound |")
    print("|---|---|---|---|---|---|")
    for threshold in (inter.threshold, 1000.0, 10000.0):
        inter.plan(threshold, apply=True, intermediates=captured)
        now = [inter.info(i.id) for i in captured]
        kept = [i for i in now if i.stored]
        nbytes = referenced_bytes(store, kept)
        times, worst = [], 0.0
        for item in (i for i in now if not i.stored and i.id in probes):
            before = probes[item.id]
            t0 = time.perf_counter()
            fresh = inter.get(item)  # not stored: recomputed
            times.append(time.perf_counter() - t0)
            bound = (before.max(0) - before.min(0)) / (2 * 255) + 1e-6 * np.abs(before).max(0) + 1e-7
            worst = max(worst, float((np.abs(fresh - before) / bound).max()))
        t_read = [median(lambda: inter.get(i, source="read"), 1)[0] for i in kept[:10]]
        timing = (f"{statistics.median(times) * 1e3:.0f} ms / {statistics.median(t_read) * 1e3:.1f} ms"
                  if times else "no probe dropped")
        print(f"| {threshold:g} | {len(kept)} of {len(now)} | {nbytes / 1e6:.2f} MB | {raw / max(nbytes, 1):.0f}× | "
              f"{timing} | {worst:.2f} |")
    inter.plan(0.0, apply=True, intermediates=captured)  # leave every stage stored again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's size: 10,000 examples, 3 repeats")
    parser.add_argument("--examples", type=int, help="CNN examples (default 2,000; 10,000 with --full)")
    parser.add_argument("--repeats", type=int, help="timing repeats, median quoted (default 1; 3 with --full)")
    parser.add_argument("--skip-cnn", action="store_true")
    args = parser.parse_args()
    examples = args.examples or (10_000 if args.full else 2_000)
    repeats = args.repeats or (3 if args.full else 1)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp, mlkeep.init(tmp) as store:
        if not args.skip_cnn:
            cnn_workload(store, examples, repeats)
        pipelines_workload(store, ["kbit(8)", "exact"] if args.full else ["kbit(8)"])


if __name__ == "__main__":
    main()
