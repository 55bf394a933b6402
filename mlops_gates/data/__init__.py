"""Readers for evaluation data: Parquet, CSV and JSONL as Arrow record batches."""
