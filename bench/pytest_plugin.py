"""pytest plugin (entry point pytest11): fixtures for benchmarking XGLM variants with pytest-benchmark."""
