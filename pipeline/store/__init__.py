"""The caches: append-only Parquet tables keyed by fingerprint (cache_table), numeric arrays in
memory-mapped shards (feature_store), and the DuckDB views `teso sql` queries (sql_views)."""
