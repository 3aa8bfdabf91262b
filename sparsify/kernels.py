"""Sparse kernels for a pruned linear: its weight held compressed (CSR or BSR, int32 indices) and multiplied through
torch's sparse matmul, so that the zeros are skipped instead of multiplied.

    y = (sum_c W_c @ x_c^T)^T + b        x: [..., in], W: [out, in] in column chunks W_c of CHUNK input features

Facts this is built on (checked with torch 2.13 CPU, MKL; docs/methods.md, "Sparse kernels"):
- the CPU kernels are MKL sparse BLAS, fp32/fp64 only ("addmm_out_sparse_csr_impl_mkl" is not implemented for
  bf16 or fp16); MKL's BSR takes square blocks only ("MKL Sparse doesn't support matrices with non-square blocks");
- int64 indices are converted to int32 on every call, so the indices are stored as int32;
- `F.linear(x, W_csr)` fails under inference_mode; `torch.sparse.mm(W, x^T)` works under no_grad and inference_mode;
- torch.compile does not trace sparse tensors (pytorch #169119): under compile the product goes through a
  torch.library custom op over the dense components (crow, col, values), which inductor treats as opaque;
- CUDA: CSR through cuSPARSE (torch.sparse.mm); BSR through torch's Triton kernel
  (torch.sparse._triton_ops.bsr_dense_mm), which needs Triton and blocks of at least 16.

The module keeps the linear's interface (in_features, out_features, bias, and `weight` as a dense view for
accounting), so backends and accounting never learn how it multiplies.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

# Every kernel a sparse variant's linears may run on; `dense` is the masked-dense control (zeros multiplied).
KERNELS = ("dense", "csr", "bsr", "2:4", "auto")
COMPRESSED = ("csr", "bsr")
CPU_DTYPES = (torch.float32, torch.float64)  # MKL sparse BLAS


class KernelSkipped(Exception):
    """A cell's kernel cannot run where the cell runs: the cell is `skipped` with this reason (bench.run.cell),
    never run dense under the kernel's label."""


@dataclass(frozen=True)
class Layout:
    """How a weight is compressed: CSR, or BSR with a block shape."""

    kernel: str  # csr | bsr
    blocksize: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        return self.kernel if self.blocksize is None else f"{self.kernel} {self.blocksize[0]}x{self.blocksize[1]}"


# Bump when the product changes how fast it runs: auto's cached break-even densities were measured on the old one.
PRODUCT_VERSION = 3

# Input features per chunk of a compressed weight. A sparse product reads one row of x^T per stored value, at random
# rows: when x^T does not fit in L2 the reads miss. 512 features of 512 tokens in fp32 are 1 MiB, half the 2 MiB L2
# of the machines measured. fc2 of random:small (512 x 2048) at 90 % density, 2 threads on the Intel Xeon VM:
# 1.37x of F.linear in one piece, 2.44x in chunks of 512 (1 thread 1.18x -> 2.53x; 64 tokens 2.86x -> 3.36x,
# 2048 tokens 0.83x -> 1.35x); weights 512 wide are one chunk. Cutting the tokens instead lost on every shape.
CHUNK = 512


def _product(crows: list[torch.Tensor], cols: list[torch.Tensor], values: list[torch.Tensor], x: torch.Tensor,
             out_features: int, chunk: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x W^T + b for W given by the compressed components of its column chunks (`chunk` input features each, the
    last one narrower); x: [N, in] -> [N, out], as the transposed view of the [out, N] product. MKL multiplies
    sparse x dense only, so the product is W x^T = sum over chunks of W_c x_c^T, accumulated in place; copying it
    back to [N, out] and adding the bias apart cost more than the sparse multiply saved (2048x512 at 10 % density,
    512 tokens, 2 threads: 0.91x of F.linear with both, 2.0x with neither). A linear fed this view reads x^T
    contiguous for free, so a chain of kernel linears copies nothing; an input in any other layout is copied once."""
    xt = x.t().contiguous()  # [in, N]: a no-op when x is the previous kernel's output (or what it fed)
    blocked = values[0].dim() > 1
    compressed = torch.sparse_bsr_tensor if blocked else torch.sparse_csr_tensor
    folded = bias is not None and not (x.is_cuda and blocked)  # the bias as addmm's input (Triton's BSR has none)
    out = None
    for i, (crow, col, vals) in enumerate(zip(crows, cols, values)):
        part = xt[i * chunk:(i + 1) * chunk]  # rows of a contiguous tensor: contiguous, no copy
        weight = compressed(crow, col, vals, (out_features, part.shape[0]), check_invariants=False)
        if x.is_cuda and blocked:
            from torch.sparse._triton_ops import bsr_dense_mm

            product = bsr_dense_mm(weight, part)
            out = product if out is None else out.add_(product)
        elif out is None:
            out = torch.addmm(bias[:, None], weight, part) if folded else torch.sparse.mm(weight, part)
        else:
            out.addmm_(weight, part)
    if bias is not None and not folded:
        out = out.add_(bias[:, None])
    return out.t()


@torch.library.custom_op("sparsify::compressed_mm", mutates_args=())
def compressed_mm(crows: list[torch.Tensor], cols: list[torch.Tensor], values: list[torch.Tensor], x: torch.Tensor,
                  out_features: int, chunk: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The sparse product as one opaque op, so that torch.compile can call it (it cannot trace sparse tensors).
    A custom op may not return a view, so the [N, out] result is made contiguous here."""
    return _product(crows, cols, values, x, out_features, chunk, bias).contiguous()


@compressed_mm.register_fake
def _(crows, cols, values, x, out_features, chunk, bias=None):
    return x.new_empty((x.shape[0], out_features))


class CompressedLinear(nn.Module):
    """An nn.Linear whose weight is stored compressed (values plus int32 indices, in column chunks of CHUNK input
    features) and multiplied sparse."""

    # It multiplies W x^T: a caller holding x^T contiguous passes its transposed view and saves a copy
    # (bench.model.attention shares one x^T among q/k/v and writes attention's output straight into one).
    reads_transposed = True

    def __init__(self, linear: nn.Linear, layout: Layout) -> None:
        super().__init__()
        weight = linear.weight.detach()
        self.layout = layout
        self.in_features, self.out_features = linear.in_features, linear.out_features
        block_cols = layout.blocksize[1] if layout.blocksize else 1
        self.chunk = max(block_cols, CHUNK // block_cols * block_cols)  # whole blocks per chunk
        values = []
        with warnings.catch_warnings():  # "sparse CSR tensor support is in beta state": known, and said in docs/methods.md
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            for i, start in enumerate(range(0, self.in_features, self.chunk)):
                piece = weight[:, start:start + self.chunk]
                sparse = piece.to_sparse_csr() if layout.kernel == "csr" else piece.to_sparse_bsr(layout.blocksize)
                self.register_buffer(f"crow{i}", sparse.crow_indices().to(torch.int32))
                self.register_buffer(f"col{i}", sparse.col_indices().to(torch.int32))
                values.append(nn.Parameter(sparse.values().contiguous(), requires_grad=False))
        # Values as frozen parameters: they follow the backend's .to(device, dtype) and count as weights.
        self.values = nn.ParameterList(values)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    @property
    def kernel(self) -> str:
        return self.layout.kernel

    @property
    def crows(self) -> list[torch.Tensor]:
        return [getattr(self, f"crow{i}") for i in range(len(self.values))]

    @property
    def cols(self) -> list[torch.Tensor]:
        return [getattr(self, f"col{i}") for i in range(len(self.values))]

    @property
    def nnz(self) -> int:
        """Stored values (for BSR: every entry of every kept block, zeros inside a block included)."""
        return sum(v.numel() for v in self.values)

    @property
    def executed_macs_per_token(self) -> int:
        """Multiply-accumulates this kernel does per token: one per stored value."""
        return self.nnz

    @property
    def weight(self) -> torch.Tensor:
        """The dense weight, rebuilt (accounting, checks and tests read it; the forward never does)."""
        maker = torch.sparse_bsr_tensor if self.values[0].dim() > 1 else torch.sparse_csr_tensor
        pieces = []
        for i, (crow, col, vals) in enumerate(zip(self.crows, self.cols, self.values)):
            width = min(self.chunk, self.in_features - i * self.chunk)
            pieces.append(maker(crow, col, vals.detach(), (self.out_features, width), check_invariants=False).to_dense())
        return torch.cat(pieces, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        args = (self.crows, self.cols, list(self.values), flat, self.out_features, self.chunk, self.bias)
        y = torch.ops.sparsify.compressed_mm(*args) if torch.compiler.is_compiling() else _product(*args)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, kernel={self.layout.label}, "
                f"nnz={self.nnz}, chunks={len(self.values)}, bias={self.bias is not None}")


def unsupported(layout: Layout, device: str, dtype: torch.dtype, shape: tuple[int, int] | None = None) -> str | None:
    """Why this compressed layout cannot run on device in dtype (for a weight of `shape`), or None when it can."""
    if layout.kernel not in COMPRESSED:
        raise ValueError(f"not a compressed layout: {layout.kernel}")
    cpu = not device.startswith("cuda")
    if cpu and dtype not in CPU_DTYPES:
        return (f"torch's CPU {layout.kernel.upper()} matmul (MKL sparse BLAS) takes fp32 or fp64, not "
                f"{str(dtype).removeprefix('torch.')}")
    if layout.kernel == "bsr":
        rows, cols = layout.blocksize
        if cpu and rows != cols:
            return f"MKL's CPU BSR matmul takes square blocks only, not {rows}x{cols} (csr serves any pattern)"
        if not cpu and min(rows, cols) < 16:
            return f"torch's Triton BSR kernel needs blocks of at least 16x16, not {rows}x{cols} (csr serves any pattern)"
        if shape is not None and (shape[0] % rows or shape[1] % cols):
            return f"block {rows}x{cols} does not divide a weight of shape {list(shape)}"
    if not cpu and not torch.cuda.is_available():
        return "CUDA is not available"
    return None
