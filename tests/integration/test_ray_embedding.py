"""The Ray Data embedding path (map_batches over an actor pool) against in-process encoding."""

from __future__ import annotations

import numpy as np
import pytest

from components.config import RayEmbeddingConfig
from components.retrieval.embedding import Embedder, _encode_local, _encode_ray

pytestmark = pytest.mark.integration


def test_ray_data_embeds_like_the_local_path_in_input_order(params):
    cfg = params.retrieval.embedders["minilm"]
    texts = [f"Country {i} has the code X{i}Q" + " and more words" * (i % 7) for i in range(120)]
    embedder = Embedder(cfg, ray=RayEmbeddingConfig(min_chunks=100, num_actors=2, batch_size=32, gpus_per_actor=0))
    assert embedder.strategy(len(texts)) is _encode_ray and embedder.strategy(99) is _encode_local
    with_ray = embedder.encode(texts, progress=False)
    local = Embedder(cfg).encode(texts)
    assert with_ray.shape == (120, embedder.dim) and with_ray.dtype == np.float32
    np.testing.assert_allclose(with_ray, local, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(with_ray, axis=1), 1.0, atol=1e-5)
