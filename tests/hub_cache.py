"""A model cache laid out as huggingface_hub lays out its own, holding tiny random models under real hub ids.

``models--owner--name/refs/main`` and ``snapshots/<commit>/``: the real lookup code
(``snapshot_download``/``hf_hub_download`` with ``local_files_only``) finds them.
"""

from __future__ import annotations

from pathlib import Path

from unirg_testing.encoders import build_bert_encoder, build_chexbert_checkpoint

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_snapshot(cache: Path, repo_id: str) -> Path:
    repo = cache / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def build_stage1_cache(cache: Path) -> Path:
    """A cache holding every weight of unirg-stage1, as `unirg models fetch` would leave it."""
    from unirg_testing.dygie import build_random_dygie

    # distilroberta-base stand-in: 6 layers so that layer 5 (the ReXrank setting) exists.
    build_bert_encoder(hub_snapshot(cache, "distilroberta-base"), num_layers=6, seed=3)
    encoder = build_bert_encoder(hub_snapshot(cache, "bert-base-uncased"), seed=4)
    build_chexbert_checkpoint(
        hub_snapshot(cache, "StanfordAIMI/RRG_scorers") / "chexbert.pth", encoder, seed=5
    )
    build_random_dygie(cache / "radgraph", model_type="radgraph")
    return cache
