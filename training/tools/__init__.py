"""Tools built on the PyTorch reference models (`training/reference/`), apart from them.

Fixtures (run from training/, so the models import as `reference.*`, the module names the
committed TorchScript fixture records):
    make_fixtures     writes Tests/ClipGenEngineTests/Fixtures/ (`make fixtures`)
    fixtures_readme   the README make_fixtures writes next to them
    make_checkpoints  PyTorch checkpoints in the published layouts (Fixtures/checkpoints/)

Benchmarks:
    bench_torch       `make bench`: the Swift engine against the PyTorch reference
    bench_vqgan       the PyTorch VQGAN decode at the paper's f16 shape
"""
