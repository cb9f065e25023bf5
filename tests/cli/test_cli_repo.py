"""`mlkeep repo ...` on real PyTorch weights in safetensors files."""

from __future__ import annotations

from pathlib import Path

import torch
from cli_support import invoke
from safetensors.torch import load_file, save_file

import mlkeep


def _weights(path: Path, seed: int, scale: float = 0.0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    with torch.no_grad():
        net[2].weight.add_(scale)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path))
    return state


def test_commit_log_diff_tag_branch_checkout_merge(tmp_path: Path) -> None:
    mlkeep.init(tmp_path)
    store = ["--store", str(tmp_path)]
    v1 = _weights(tmp_path / "v1.safetensors", 0)
    _weights(tmp_path / "v2.safetensors", 0, scale=0.01)
    assert invoke(*store, "repo", "commit", "mlp", str(tmp_path / "v1.safetensors"), "-m", "first").exit_code == 0
    assert invoke(*store, "repo", "commit", "mlp", str(tmp_path / "v2.safetensors"), "-m", "tuned").exit_code == 0
    log = invoke(*store, "repo", "log", "mlp", "--json").json()
    assert [c["message"] for c in log] == ["tuned", "first"]
    diff = invoke(*store, "repo", "diff", "mlp", "main~1", "main", "--json").json()
    assert [t["name"] for t in diff["tensors"]] == ["2.weight"] and diff["unchanged"] == 3
    assert "2.weight" in invoke(*store, "repo", "diff", "mlp", "main~1").stdout
    assert invoke(*store, "repo", "tag", "mlp", "v1", "main~1", "--json").json() == {"v1": log[1]["id"]}
    assert "exp" in invoke(*store, "repo", "branch", "mlp", "exp", "--at", "v1", "--json").json()
    out = tmp_path / "out.safetensors"
    assert invoke(*store, "repo", "checkout", "mlp", "v1", "-o", str(out)).exit_code == 0
    back = load_file(str(out))
    assert all(torch.equal(back[k], v1[k]) for k in v1)
    merged = invoke(*store, "repo", "merge", "mlp", "exp", "main", "--strategy", "theirs", "--json").json()
    assert merged["parents"] == [log[1]["id"], log[0]["id"]]
    assert invoke(*store, "repo", "list", "--json").json() == ["mlp"]


def test_errors_are_one_line(tmp_path: Path) -> None:
    mlkeep.init(tmp_path)
    r = invoke("--store", str(tmp_path), "repo", "log", "nothing")
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("error:")
    r = invoke("--store", str(tmp_path), "repo", "commit", "x", str(tmp_path / "missing.safetensors"))
    assert r.exit_code == 1 and "not a file" in r.stderr
