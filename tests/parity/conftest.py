"""Fixtures of the parity suite (.venv-terratorch: ours and TerraTorch in one process)."""
import pytest
import torch


@pytest.fixture
def true_fp32():
    """Importing TerraTorch sets float32_matmul_precision "medium" (bf16 matmuls on AMX CPUs): a test using
    this compares both sides in true fp32, and the precision is put back after it."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)
