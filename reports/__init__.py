"""Rendering of result records: Rich views, files and plots. Reads records; never runs a model."""
