"""Sparse kernels for a pruned linear: its weight held compressed (CSR or BSR, int32 indices) and multiplied through
torch's sparse matmul, so that the zeros are skipped instead of multiplied.

    y = (W_sparse @ x^T)^T + b        x: [..., in], W: [out, in]

Facts this is built on (checked with torch 2.13 CPU, MKL; see DESIGN.md):
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
PRODUCT_VERSION = 2


def _product(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, x: torch.Tensor, out_features: int,
             bias: torch.Tensor | None = None) -> torch.Tensor:
    """x W^T + b for W given by its compressed components; x: [N, in] -> [N, out], as the transposed view of the
    [out, N] product. MKL multiplies sparse x dense only, so the product is W x^T; copying it back to [N, out] and
    adding the bias apart cost more than the sparse multiply saved (2048x512 at 10 % density, 512 tokens, 2
    threads: 0.91x of F.linear with both, 2.0x with neither). A linear fed this view reads x^T contiguous for free,
    so a chain of kernel linears copies nothing; an input in any other layout is copied once here."""
    size = (out_features, x.shape[1])
    xt = x.t().contiguous()  # [in, N]: a no-op when x is the previous kernel's output (or what it fed)
    compressed = torch.sparse_csr_tensor if values.dim() == 1 else torch.sparse_bsr_tensor
    weight = compressed(crow, col, values, size, check_invariants=False)
    if x.is_cuda and values.dim() > 1:
        from torch.sparse._triton_ops import bsr_dense_mm

        out = bsr_dense_mm(weight, xt)
        return (out if bias is None else out + bias[:, None]).t()
    if bias is None:
        return torch.sparse.mm(weight, xt).t()
    return torch.addmm(bias[:, None], weight, xt).t()


@torch.library.custom_op("sparsify::compressed_mm", mutates_args=())
def compressed_mm(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, x: torch.Tensor,
                  out_features: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The sparse product as one opaque op, so that torch.compile can call it (it cannot trace sparse tensors).
    A custom op may not return a view, so the [N, out] result is made contiguous here."""
    return _product(crow, col, values, x, out_features, bias).contiguous()


@compressed_mm.register_fake
def _(crow, col, values, x, out_features, bias=None):
    return x.new_empty((x.shape[0], out_features))


class CompressedLinear(nn.Module):
    """An nn.Linear whose weight is stored compressed (values plus int32 indices) and multiplied sparse."""

    def __init__(self, linear: nn.Linear, layout: Layout) -> None:
        super().__init__()
        weight = linear.weight.detach()
        with warnings.catch_warnings():  # "sparse CSR tensor support is in beta state": known, and said in DESIGN.md
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            sparse = weight.to_sparse_csr() if layout.kernel == "csr" else weight.to_sparse_bsr(layout.blocksize)
        self.layout = layout
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("crow", sparse.crow_indices().to(torch.int32))
        self.register_buffer("col", sparse.col_indices().to(torch.int32))
        # Values as a frozen parameter: it follows the backend's .to(device, dtype) and counts as a weight.
        self.values = nn.Parameter(sparse.values().contiguous(), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    @property
    def kernel(self) -> str:
        return self.layout.kernel

    @property
    def nnz(self) -> int:
        """Stored values (for BSR: every entry of every kept block, zeros inside a block included)."""
        return self.values.numel()

    @property
    def executed_macs_per_token(self) -> int:
        """Multiply-accumulates this kernel does per token: one per stored value."""
        return self.nnz

    @property
    def weight(self) -> torch.Tensor:
        """The dense weight, rebuilt (accounting, checks and tests read it; the forward never does)."""
        size = (self.out_features, self.in_features)
        maker = torch.sparse_csr_tensor if self.values.dim() == 1 else torch.sparse_bsr_tensor
        return maker(self.crow, self.col, self.values.detach(), size, check_invariants=False).to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        if torch.compiler.is_compiling():
            y = torch.ops.sparsify.compressed_mm(self.crow, self.col, self.values, flat, self.out_features, self.bias)
        else:
            y = _product(self.crow, self.col, self.values, flat, self.out_features, self.bias)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, kernel={self.layout.label}, "
                f"nnz={self.nnz}, bias={self.bias is not None}")


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
