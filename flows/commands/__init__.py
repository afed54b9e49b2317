"""Commands that are not pipeline stages: running the pipeline, data, analysis, operations."""
