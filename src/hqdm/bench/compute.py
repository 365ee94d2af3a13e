"""Benchmarks of the classical compute: a training step of every model, sampler evaluations, FID features.

Each model is measured on three paths in the same run: ``plain`` (the forwards of
:mod:`hqdm.models.plain`, NCHW float32: the code before the fast path), ``fp32`` and ``bf16`` (the fast
forwards at that precision). The machine's own matrix-product rate (``torch.mm`` of two 2048x2048
matrices, fp32 and bf16) is measured in the same run, so a step's GFLOP/s can be read as a fraction of
what these cores reach on the kind of work they do best. Every measurement runs in a fresh subprocess
(:func:`hqdm.bench.measure.run_in_subprocess`); ratios compare figures of the same round.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Iterator

import torch

from hqdm.bench import measure
from hqdm.bench.results import Table
from hqdm.diffusion import make_sampler, make_schedule
from hqdm.experiments.parallel_cells import THREAD_VARIABLES
from hqdm.metrics.inception import FIDInceptionFeatures
from hqdm.models import build_model, count_parameters, list_models
from hqdm.models.plain import plain_forwards
from hqdm.precision import set_precision
from hqdm.train.memory import keep_freed_memory

PATHS = ("plain", "fp32", "bf16")
GEMM_SIZE = 2048


@contextlib.contextmanager
def path_of(model: torch.nn.Module, path: str) -> Iterator[None]:
    """Run ``model`` on one of :data:`PATHS` inside the block."""
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; choose from {', '.join(PATHS)}")
    set_precision(model, "bf16" if path == "bf16" else "fp32")
    with plain_forwards() if path == "plain" else contextlib.nullcontext():
        yield


def setup_heap(keep_heap: bool) -> None:
    if keep_heap:
        keep_freed_memory()  # as ``hqdm``'s commands run


# ---------------------------------------------------------------------------------------------------
# One measurement (runs inside a subprocess)


def measure_gemm(dtype: str, size: int = GEMM_SIZE, seconds: float = 2.0) -> dict:
    """GFLOP/s of ``torch.mm`` on two (size x size) matrices of ``dtype`` ("float32" or "bfloat16")."""
    a = torch.randn(size, size).to(getattr(torch, dtype))
    b = torch.randn(size, size).to(getattr(torch, dtype))
    per_call, _ = measure.time_call(lambda: torch.mm(a, b), seconds, 3, warmup=2)
    return {"gflops": 2 * size**3 / per_call / 1e9}


def training_step(model_name: str, batch: int) -> tuple[torch.nn.Module, Callable[[], None]]:
    """A fresh model (seed 0) and one forward + backward + Adam step of it on fixed random inputs."""
    torch.manual_seed(0)
    model = build_model(model_name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    x = torch.randn(batch, model.in_channels, 28, 28)
    t = torch.randint(0, 1000, (batch,))
    eps = torch.randn_like(x)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = (model(x, t) - eps).square().mean()
        loss.backward()
        optimizer.step()

    return model, step


def _count_flops(fn: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def measure_train_step(
    model_name: str, batch: int, seconds: float, path: str = "fp32", keep_heap: bool = True
) -> dict:
    """Seconds per forward + backward + Adam step at ``batch`` (after three warm-up steps: the heap keeps
    settling over the first few) and the GFLOP one step performs on this path (``FlopCounterMode``)."""
    setup_heap(keep_heap)
    model, step = training_step(model_name, batch)
    with path_of(model, path):
        seconds_per_step, peak = measure.time_call(step, seconds, 2, warmup=3)
        gflop = _count_flops(step)
    classical, quantum = count_parameters(model)
    return {
        "precision": getattr(model, "precision", "fp32"),  # what the path set, for the record and the tests
        "seconds": seconds_per_step,
        "peak_mb": peak,
        "gflop": gflop,
        "params": classical + quantum,
        "quantum_params": quantum,
    }


def measure_sampler(
    model_name: str, sampler: str, batch: int, steps: int, path: str = "fp32", keep_heap: bool = True
) -> dict:
    """Model evaluations per second of a sampler at ``batch`` over ``steps`` evaluations.

    DDPM visits every timestep of its schedule, so it runs on a ``steps``-long cosine schedule: the cost of
    one evaluation does not depend on the schedule's length."""
    setup_heap(keep_heap)
    torch.manual_seed(0)
    model = build_model(model_name)
    if sampler == "ddim":
        chosen = make_sampler("ddim", make_schedule("cosine"), steps=steps)
    else:
        chosen = make_sampler("ddpm", make_schedule("cosine", steps))
    generator = torch.Generator().manual_seed(0)
    shape = (batch, model.in_channels, 28, 28)
    with path_of(model, path):
        chosen.sample(model, (2, *shape[1:]), generator=generator)  # warm-up: allocator, kernels
        seconds, peak = measure.time_call(lambda: chosen.sample(model, shape, generator=generator), 0.0, 1, 0)
    return {"seconds": seconds, "evals_per_s": batch * steps / seconds, "peak_mb": peak}


def measure_inception(batch: int, path: str, seconds: float, keep_heap: bool = True) -> dict:
    """Images/s of the FID feature network on uint8 28x28 grey images (resized to 299x299 inside).

    ``plain`` is the network as it ran before the fast path (NCHW, float32); ``fp32`` and ``bf16`` are
    :class:`~hqdm.metrics.inception.FIDInceptionFeatures` at that precision (channels-last)."""
    setup_heap(keep_heap)
    net = FIDInceptionFeatures(precision="bf16" if path == "bf16" else "fp32")
    images = torch.randint(0, 256, (batch, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator())

    def plain() -> None:
        with torch.no_grad():
            net.net(net.preprocess(images))

    call = plain if path == "plain" else (lambda: net(images))
    per_call, peak = measure.time_call(call, seconds, 2, warmup=1)
    return {"seconds": per_call, "images_per_s": batch / per_call, "peak_mb": peak}


# ---------------------------------------------------------------------------------------------------
# Reports


def _ordered_models(models: tuple[str, ...] | None) -> list[str]:
    names = list(models or list_models())
    if "unet" in names:
        names.remove("unet")
    return ["unet", *names]


def _median_range(values: list[float]) -> str:
    middle = statistics.median(values)
    return f"{middle:.2f}x" if len(values) == 1 else f"{middle:.2f}x ({min(values):.2f}-{max(values):.2f})"


def gemm_rates(seconds: float = 2.0) -> dict[str, float]:
    """GFLOP/s of the machine's matrix product in fp32 and bf16, each timed for at least ``seconds``."""
    return {
        dtype: measure.run_in_subprocess("compute.measure_gemm", dtype=dtype, seconds=seconds)["gflops"]
        for dtype in ("float32", "bfloat16")
    }


def summarize_train_step(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """Per (model, path): median s/step over the rounds, and per round the speed-up over the model's
    ``plain`` path and the ratio to the U-Net on the same path (each from that round's measurements)."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for row in sorted(rows, key=lambda r: r["round"]):
        runs.setdefault((row["model"], row["path"]), []).append(row)
    order = list(dict.fromkeys((r["model"], r["path"]) for r in rows))
    results: dict[tuple[str, str], dict] = {}
    for name, path in order:
        times = [r["seconds"] for r in runs[name, path]]
        result = {**runs[name, path][0], "seconds": statistics.median(times)}
        if (name, "plain") in runs:
            plain = [r["seconds"] for r in runs[name, "plain"]]
            result["speedup"] = [p / s for p, s in zip(plain, times, strict=True)]
        result["vs_unet"] = [s / u["seconds"] for s, u in zip(times, runs["unet", path], strict=True)]
        result["gflops"] = result["gflop"] / result["seconds"]
        results[name, path] = result
    return results


def _train_step_head(info: dict) -> list[str]:
    heap = "" if info["keep_heap"] else ", glibc heap defaults"
    rates = info["gemm"]
    return [
        f"# training step benchmark, batch {info['batch']}, {info['rounds']} round(s){heap} "
        f"({info['machine']})",
        f"# machine matrix product (torch.mm {GEMM_SIZE}x{GEMM_SIZE}): fp32 {rates['float32']:.0f} GFLOP/s, "
        f"bf16 {rates['bfloat16']:.0f} GFLOP/s",
    ]


def _round_line(info: dict, rows: list[dict], index: int) -> str:
    times = ", ".join(f"{r['model']}/{r['path']} {r['seconds']:.2f} s" for r in rows if r["round"] == index)
    return f"# round {index + 1}/{info['rounds']}: {times}"


def _train_step_table(info: dict, rows: list[dict]) -> list[str]:
    lines = [
        "| model | params (quantum) | path | s/step | images/s | GFLOP/step | GFLOP/s | of bf16 matmul rate "
        "| speed-up over plain | ratio to unet |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, path), result in summarize_train_step(rows).items():
        speedup = _median_range(result["speedup"]) if "speedup" in result else "-"
        lines.append(
            f"| {name} | {result['params']:,} ({result['quantum_params']:,}) | {path} | "
            f"{result['seconds']:.3f} | {info['batch'] / result['seconds']:.0f} | {result['gflop']:.1f} | "
            f"{result['gflops']:.0f} | {result['gflops'] / info['gemm']['bfloat16']:.0%} | {speedup} | "
            f"{_median_range(result['vs_unet'])} |"
        )
    return lines


def format_train_step(info: dict, rows: list[dict]) -> list[str]:
    rounds = [_round_line(info, rows, i) for i in range(info["rounds"])] if info["rounds"] > 1 else []
    return _train_step_head(info) + rounds + _train_step_table(info, rows)


def train_step_benchmark(
    models: tuple[str, ...] | None = None,
    paths: tuple[str, ...] = PATHS,
    batch: int = 128,
    seconds: float = 10.0,
    rounds: int = 1,
    keep_heap: bool = True,
    echo: Callable[[str], None] = print,
) -> Table:
    """Every (model, path) measured ``rounds`` times, in turn. For each: s/step, images/s, GFLOP/s, its
    fraction of the bf16 matrix-product rate, the speed-up over the ``plain`` path of the same model and
    round, and the ratio to the U-Net on the same path and round (medians, range over rounds). The
    matrix product is timed for ``min(seconds, 2)`` s per precision."""
    names = _ordered_models(models)
    info = {"machine": measure.machine_line(), "batch": batch, "rounds": rounds, "keep_heap": keep_heap}
    info["gemm"] = gemm_rates(min(seconds, 2.0))
    table = Table("train-step", info)
    for line in _train_step_head(info):
        echo(line)
    for index in range(rounds):
        for name in names:
            for path in paths:
                options = {"batch": batch, "seconds": seconds, "path": path, "keep_heap": keep_heap}
                measured = measure.run_in_subprocess("compute.measure_train_step", model_name=name, **options)
                table.rows.append({"model": name, "path": path, "round": index, **measured})
        if rounds > 1:
            echo(_round_line(info, table.rows, index))
    for line in _train_step_table(info, table.rows):
        echo(line)
    return table


def _sample_line(rows: list[dict], row: dict) -> str:
    key = (row["model"], row["sampler"], row["batch"], "plain")
    same = (r for r in rows if (r["model"], r["sampler"], r["batch"], r["path"]) == key)
    plain = next(same, None)
    speedup = f"{row['evals_per_s'] / plain['evals_per_s']:.2f}x" if plain else "-"
    return (
        f"| {row['model']} | {row['sampler']} | {row['path']} | {row['batch']} | {row['evals_per_s']:.0f} | "
        f"{row['evals_per_s'] / 100:.1f} | {speedup} |"
    )


def format_sample(info: dict, rows: list[dict]) -> list[str]:
    threads = f", {info['threads']} thread(s) per measurement" if info.get("threads") else ""
    lines = [
        f"# sampling benchmark, batch {', '.join(map(str, info['batches']))}, {info['steps']} evaluations "
        f"per run{threads} ({info['machine']})",
        "| model | sampler | path | batch | evaluations/s | images/s at 100 steps | speed-up over plain |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    return lines + [_sample_line(rows[: i + 1], row) for i, row in enumerate(rows)]


def sample_benchmark(
    models: tuple[str, ...] = ("unet",),
    paths: tuple[str, ...] = PATHS,
    samplers: tuple[str, ...] = ("ddim", "ddpm"),
    batches: tuple[int, ...] = (256,),
    steps: int = 10,
    threads: int | None = None,
    keep_heap: bool = True,
    echo: Callable[[str], None] = print,
) -> Table:
    """Model evaluations/s of each sampler at each batch size, per model and path, with the speed-up over
    ``plain`` at the same batch. ``threads`` sets the measuring process's OpenMP/MKL threads (default: this
    process's settings), e.g. 1 to measure what each of ``hqdm study --workers 2``'s evaluations sees."""
    info = {"machine": measure.machine_line(), "batches": list(batches), "steps": steps, "threads": threads}
    info["keep_heap"] = keep_heap
    env = None if threads is None else dict.fromkeys(THREAD_VARIABLES, str(threads))
    table = Table("sample", info)
    for line in format_sample(info, []):
        echo(line)
    for name in _ordered_models(models) if "unet" in models else list(models):
        for sampler in samplers:
            for batch in batches:
                for path in paths:
                    result = measure.run_in_subprocess(
                        "compute.measure_sampler", env,
                        model_name=name, sampler=sampler, batch=batch, steps=steps, path=path,
                        keep_heap=keep_heap,
                    )  # fmt: skip
                    row = {"model": name, "sampler": sampler, "path": path, "batch": batch}
                    table.rows.append({**row, **result})
                    echo(_sample_line(table.rows, table.rows[-1]))
    return table


def _fid_line(rows: list[dict], row: dict) -> str:
    base = next((r for r in rows if r["path"] == "plain"), None)
    speedup = f"{row['images_per_s'] / base['images_per_s']:.2f}x" if base else "-"
    return (
        f"| {row['path']} | {row['images_per_s']:.1f} | {10_000 / row['images_per_s']:.0f} | "
        f"{speedup} | {row['peak_mb']:,.0f} |"
    )


def format_fid(info: dict, rows: list[dict]) -> list[str]:
    lines = [
        f"# FID feature benchmark, batch {info['batch']}, 28x28 grey -> 299x299 ({info['machine']})",
        "| path | images/s | seconds per 10,000 images | speed-up over plain | peak MB |",
        "|---|---:|---:|---:|---:|",
    ]
    return lines + [_fid_line(rows[: i + 1], row) for i, row in enumerate(rows)]


def fid_benchmark(
    batch: int = 100,
    paths: tuple[str, ...] = PATHS,
    seconds: float = 10.0,
    keep_heap: bool = True,
    echo: Callable[[str], None] = print,
) -> Table:
    """Images/s of the FID Inception network on each path, with the speed-up over ``plain``."""
    info = {"machine": measure.machine_line(), "batch": batch, "keep_heap": keep_heap}
    table = Table("fid", info)
    for line in format_fid(info, []):
        echo(line)
    for path in paths:
        options = {"batch": batch, "path": path, "seconds": seconds, "keep_heap": keep_heap}
        result = measure.run_in_subprocess("compute.measure_inception", **options)
        table.rows.append({"path": path, **result})
        echo(_fid_line(table.rows, table.rows[-1]))
    return table
