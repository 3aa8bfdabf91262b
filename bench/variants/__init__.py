"""Build: variant methods (a lazy registry of "module:attribute" names), the fine-tuning loop they share, and
artifacts, the cached directories that hold what a method built."""
