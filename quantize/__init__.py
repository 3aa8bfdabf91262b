"""Quantized precisions on each backend: a variant's decoder linears in int8 (dynamic activations or weight-only)
or fp8, through the library that does it best there (bench.plugins.precision declares which). Like a sparse kernel,
a realisation choice: the artifact is the same, the cell is another.

    realize.py     the cell's precision on a torch module (eager, compile) or as a request the ONNX export carries
    torch_linears  torch.ao's and torchao's quantizers over the decoder linears
    onnx_graph     onnxruntime.quantization over the exported graph's decoder MatMuls
"""
