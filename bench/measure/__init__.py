"""Measure: the one clock (timing), statistics from raw samples, memory, energy, the FLOP/byte model and device
peaks, the measurement passes of a prepared runner, and the independent agreement check. Returns plain values."""
