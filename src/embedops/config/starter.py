"""The commented starter `embedops.yaml` written by `embedops init`."""

STARTER = """\
# embedops project file. Every section is optional; defaults work offline.
# Docs: README.md. Validate and measure with `embedops check`.
version: 1
name: {name}
# semantic_search | recommendation | deduplication | classification
use_case: {use_case}
description: "What users search for, and what a good result is."

# Inputs: a JSONL/CSV/Parquet file, a BEIR folder (corpus/queries/qrels) or an STS file.
data:
  - name: corpus
    path: {data_path}
    format: auto            # auto | jsonl | csv | parquet | beir | sts | images

model:
  name: all-MiniLM-L6-v2    # bundled, offline; or a folder, a Hugging Face id, or a registry alias (champion)
  backend: torch            # torch | onnx
  device: cpu
  batch_size: 32
  # max_tokens: 256         # inputs longer than this are truncated (and counted in reports)
  # truncate_dim: 128       # Matryoshka-style shorter vectors

prepare:
  strip_html: true
  normalize_unicode: true
  dedupe: near              # none | exact | near
  near_duplicate_threshold: 0.9
  # chunk_tokens: 200       # split long documents into overlapping chunks
  chunk_overlap: 32

# What `embedops check` measures the criteria on.
evaluation:
  retrieval: {retrieval}    # a BEIR folder with qrels
  sts: {sts}                # stsbenchmark.tsv or its folder
  split: test
  # sample_queries: 100     # validate on a small sample first

# Success criteria: 'metric op threshold'. Measurable now: ndcg@k, recall@k, mrr@k, map@k,
# sts_spearman, sts_pearson, p50_latency_ms, p95_latency_ms, throughput_per_s, memory_mb,
# model_size_mb, dimension.
criteria:
  success:
    - ndcg@10 >= 0.60
    - sts_spearman >= 0.80
    - p95_latency_ms <= 50
    - memory_mb <= 2000
  cpu_only: true
  # max_memory_mb: 2000
"""


def render_starter(name: str = "my-search", use_case: str = "semantic_search", data_path: str = "data/corpus.jsonl",
                   retrieval: str = "null", sts: str = "null") -> str:
    """The starter file with the given values filled in."""
    return STARTER.format(name=name, use_case=use_case, data_path=data_path, retrieval=retrieval, sts=sts)
