"""Real models on bundled data: a small CNN trained a few steps on digits, and scikit-learn pipelines."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits_images():  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return X[:600], y[:600]


@pytest.fixture(scope="session")
def cnn(digits_images):  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(0)
    from cnn_model import DigitsCNN

    net = DigitsCNN()
    X, y = digits_images
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for step in range(30):
        idx = slice((step * 64) % 512, (step * 64) % 512 + 64)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
        loss.backward()
        opt.step()
    net.eval()
    return net


@pytest.fixture(scope="session")
def pipeline(iris):  # type: ignore[no-untyped-def]
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    return Pipeline([("scale", StandardScaler()), ("pca", PCA(3)), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)


@pytest.fixture
def inter(store):  # type: ignore[no-untyped-def]
    s = store.intermediates
    s.block_rows = 128  # several blocks and chunks even on small data
    s.chunk_bytes = 8 * 1024
    return s
