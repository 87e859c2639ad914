"""CPU retriever artifact: a FAISS inner-product index over the bundled knowledge-base passages.

``generated://faiss-index?corpus=builtin&embed=<model>``: the passages in ``corpus/knowledge_base.jsonl``
are embedded with ``<model>``'s artifact, by the very encoder code that model serves queries with
(``python_models/embed/sentence_encoder.py``), so an index vector and a query vector are comparable.
Vectors are unit length, so inner product is cosine similarity; a flat index is exact and, for a
knowledge base this size, faster than any approximate one.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from pathlib import Path

from model_repo.artifacts.sources import package_version, query_params
from model_repo.artifacts.store import ArtifactError, Recipe
from platform_spec.digests import file_sha256

CORPORA = {"builtin": Path(__file__).resolve().parent / "corpus" / "knowledge_base.jsonl"}
PYTHON_MODELS = Path(__file__).resolve().parents[1] / "python_models"
ENCODER_CODE = PYTHON_MODELS / "embed" / "sentence_encoder.py"
SHARED_CODE = PYTHON_MODELS / "_common" / "text_encoding.py"


def load_corpus(path: Path) -> list[dict[str, str]]:
    passages = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            passages.append({"id": str(row["id"]), "title": str(row["title"]), "text": str(row["text"])})
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{path}:{number}: expected a JSON object with id, title, text ({exc})") from None
    if not passages:
        raise ArtifactError(f"{path}: the corpus is empty; add one JSON passage per line")
    return passages


def _encoder_class():
    """The serving model's SentenceEncoder, imported the way Triton imports it (``_common`` on sys.path)."""
    added = str(PYTHON_MODELS) not in sys.path
    if added:
        sys.path.insert(0, str(PYTHON_MODELS))
    try:
        spec = importlib.util.spec_from_file_location("sentence_encoder", ENCODER_CODE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.SentenceEncoder
    finally:
        if added:
            sys.path.remove(str(PYTHON_MODELS))


def recipe(spec, serving, ctx) -> Recipe:
    uri = serving.artifact.uri
    params = query_params(uri)
    corpus_name, embed_model = params.get("corpus"), params.get("embed")
    if corpus_name not in CORPORA:
        raise ArtifactError(
            f"model {spec.name!r}: {uri}: corpus={corpus_name!r} is unknown; use one of {sorted(CORPORA)}"
        )
    if not embed_model:
        raise ArtifactError(f"model {spec.name!r}: {uri} must name the embedding model with embed=<model>")
    corpus_path = CORPORA[corpus_name]
    passages = load_corpus(corpus_path)
    embed_entry = ctx.entry_for(embed_model)  # the embedding model's (cached) artifact
    embed_manifest = json.loads((embed_entry / "artifact.json").read_text())
    max_tokens = int(ctx.parameters_of(embed_model).get("max_tokens", "256"))

    def build(out: Path) -> None:
        import faiss
        import numpy as np

        encoder = _encoder_class()(
            str(embed_entry / "model.onnx"), str(embed_entry / "tokenizer.json"), max_tokens=max_tokens
        )
        vectors = np.concatenate(
            [encoder.encode([p["text"] for p in passages[i : i + 16]]) for i in range(0, len(passages), 16)]
        )
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        faiss.write_index(index, str(out / "index.faiss"))
        with open(out / "passages.jsonl", "w") as handle:
            for passage in passages:  # row i of the index is line i of this file
                handle.write(json.dumps(passage, sort_keys=True) + "\n")

    return Recipe(
        model=spec.name,
        role="retriever",
        uri=uri,
        weights=serving.weights,
        main_file="index.faiss",
        builder_source=inspect.getsource(build) + ENCODER_CODE.read_text() + SHARED_CODE.read_text(),
        inputs={
            "corpus_sha256": file_sha256(corpus_path),
            "embed_key": embed_manifest["key"],
            "max_tokens": max_tokens,
            "faiss": package_version("faiss-cpu"),
        },
        build=build,
        details={"passages": len(passages), "embed_model": embed_model, "metric": "inner product (cosine)"},
    )
