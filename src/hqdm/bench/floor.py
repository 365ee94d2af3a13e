"""Where a training step's time goes, and how fast it could get with the library's matrix kernels.

``hqdm bench floor`` profiles a few training steps of a model on one path (``torch.profiler``, self time
of every op) and counts their work (``FlopCounterMode``). Each op falls into one class of
:data:`OP_CLASSES`; the matrix classes (convolutions and matrix products) carry the FLOPs. Two bounds
follow, both ratios within one run:

* the **matrix floor**: the step if everything but the matrix work took no time. No fusion of the other
  ops can make the step faster than this; read as a speed-up over the ``plain`` path (timed in the same
  run) and as a fraction of the machine's bf16 ``torch.mm`` rate;
* the matrix work's **own rate**: what the convolution and matrix kernels reach at this model's shapes
  (few channels, many pixels), as a fraction of the same ``torch.mm`` rate.

The profiler adds a cost per op call, so the classes are reported as shares of the profiled self time and
turned into seconds by scaling the unprofiled step time.
"""

from __future__ import annotations

from collections.abc import Callable

from hqdm.bench import measure
from hqdm.bench.compute import GEMM_SIZE, gemm_rates, path_of, setup_heap, training_step
from hqdm.bench.results import Table

__all__ = ["OP_CLASSES", "floor_benchmark", "format_floor", "measure_step_profile"]

#: class -> (profiler op names, FlopCounterMode op names); an op in none of them is "everything else".
OP_CLASSES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "convolution forward": (
        ("aten::convolution", "aten::_convolution", "aten::mkldnn_convolution", "aten::conv2d"),
        ("aten.convolution",),
    ),
    "convolution backward": (
        ("aten::convolution_backward", "aten::mkldnn_convolution_backward"),
        ("aten.convolution_backward",),
    ),
    "matrix products": (
        ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::matmul", "aten::linear"),
        ("aten.mm", "aten.bmm", "aten.addmm", "aten.baddbmm"),
    ),
    "softmax": (("aten::_softmax", "aten::_softmax_backward_data", "aten::softmax"), ()),
    "normalisation": (
        (
            "aten::var_mean",
            "aten::var",
            "aten::native_layer_norm",
            "aten::native_layer_norm_backward",
            "aten::native_group_norm",
            "aten::native_group_norm_backward",
            "aten::linalg_vector_norm",
        ),
        (),
    ),
    # the circuits' own autograd Function when they run in worker threads (the threads' ops are not
    # profiled); circuits run on the calling thread show up as their aten ops, in the other classes
    "quantum circuits (threaded)": (("ThreadedChunks", "ThreadedChunksBackward"), ()),
    "copies and casts": (
        ("aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::contiguous", "aten::cat"),
        (),
    ),
}
MATRIX_CLASSES = ("convolution forward", "convolution backward", "matrix products")
OTHER = "everything else"
LARGEST_OTHERS = 6  # ops outside the matrix work named in the report, largest first


def op_class(op: str) -> str:
    return next((name for name, (ops, _) in OP_CLASSES.items() if op in ops), OTHER)


def measure_step_profile(
    model_name: str, batch: int, path: str, steps: int = 3, keep_heap: bool = True
) -> dict:
    """Per op: self seconds and calls per step over ``steps`` profiled steps (after three warm-up steps);
    per counted op: GFLOP per step."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    setup_heap(keep_heap)
    model, step = training_step(model_name, batch)
    with path_of(model, path):
        for _ in range(3):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as profiled:
            for _ in range(steps):
                step()
        with FlopCounterMode(display=False) as counter:
            step()
    ops = {
        event.key: [event.self_cpu_time_total / 1e6 / steps, event.count / steps]
        for event in profiled.key_averages()
        if event.self_cpu_time_total > 0
    }
    flops = {str(op): n / 1e9 for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return {"ops": ops, "flops": flops}


def _classes(row: dict) -> dict[str, dict[str, float]]:
    """Per class: share of the profiled self time and GFLOP per step."""
    total = sum(seconds for seconds, _ in row["ops"].values())
    classes = {name: {"share": 0.0, "gflop": 0.0} for name in (*OP_CLASSES, OTHER)}
    for op, (seconds, _) in row["ops"].items():
        classes[op_class(op)]["share"] += seconds / total
    for name, (_, flop_ops) in OP_CLASSES.items():
        classes[name]["gflop"] = sum(row["flops"].get(op, 0.0) for op in flop_ops)
    return classes


def _largest_others(row: dict) -> str:
    total = sum(seconds for seconds, _ in row["ops"].values())
    others = sorted(
        ((seconds, op, calls) for op, (seconds, calls) in row["ops"].items() if op_class(op) == OTHER),
        reverse=True,
    )[:LARGEST_OTHERS]
    return ", ".join(f"{op} {seconds / total:.1%} ({calls:.0f} calls)" for seconds, op, calls in others)


def _notes(info: dict, row: dict) -> list[str]:
    mm = info["gemm"]["bfloat16"]
    step = row["seconds"]
    classes = _classes(row)
    floor = step * sum(classes[name]["share"] for name in MATRIX_CLASSES)
    matrix_rate = sum(classes[name]["gflop"] for name in MATRIX_CLASSES) / floor
    model = f"{row['model']}/{row['path']}"
    return [
        f"# {model}: {step:.3f} s/step, plain {row['plain_seconds']:.3f} s/step "
        f"({row['plain_seconds'] / step:.2f}x over plain); {row['gflop']:.1f} GFLOP/step, "
        f"{row['gflop'] / step:.0f} GFLOP/s ({row['gflop'] / step / mm:.1%} of the bf16 mm rate)",
        f"# {model} matrix floor (every other op free): {floor:.3f} s/step = "
        f"{row['plain_seconds'] / floor:.2f}x over plain, {row['gflop'] / floor / mm:.1%} of the bf16 mm "
        f"rate; the matrix work itself runs at {matrix_rate:.0f} GFLOP/s ({matrix_rate / mm:.1%})",
        f"# {model} largest ops outside the classes: {_largest_others(row)}",
    ]


def _class_rows(info: dict, row: dict) -> list[str]:
    mm = info["gemm"]["bfloat16"]
    lines = []
    for name, entry in _classes(row).items():
        if not entry["share"]:
            continue  # a class this model does not have (the U-Net has no circuits)
        seconds = row["seconds"] * entry["share"]
        rate = entry["gflop"] / seconds if entry["gflop"] and seconds else None
        lines.append(
            f"| {row['model']} | {row['path']} | {name} | {entry['share']:.1%} | {seconds:.3f} | "
            f"{entry['gflop']:.1f} | {f'{rate:.0f}' if rate else '-'} | "
            f"{f'{rate / mm:.1%}' if rate else '-'} |"
        )
    return lines


def _head(info: dict) -> str:
    rates = info["gemm"]
    return (
        f"# training step floor, batch {info['batch']}, {info['steps']} profiled steps ({info['machine']}); "
        f"machine matrix product (torch.mm {GEMM_SIZE}x{GEMM_SIZE}): fp32 {rates['float32']:.0f} GFLOP/s, "
        f"bf16 {rates['bfloat16']:.0f} GFLOP/s"
    )


def format_floor(info: dict, rows: list[dict]) -> list[str]:
    """The head, every model's notes, then one table of every model's classes."""
    return [
        _head(info),
        *(line for row in rows for line in _notes(info, row)),
        "| model | path | op class | share of the step | s/step | GFLOP/step | GFLOP/s | of bf16 mm rate |",
        "|---|---|---|---:|---:|---:|---:|---:|",
        *(line for row in rows for line in _class_rows(info, row)),
    ]


def floor_benchmark(
    models: tuple[str, ...] = ("unet",),
    path: str = "bf16",
    batch: int = 128,
    seconds: float = 10.0,
    steps: int = 3,
    keep_heap: bool = True,
    echo: Callable[[str], None] = print,
) -> Table:
    """Per model: the step on ``path`` and on ``plain`` (timed, unprofiled), then its profile by op class
    with the matrix floor. Each measurement runs in its own subprocess."""
    info = {"machine": measure.machine_line(), "batch": batch, "steps": steps}
    info["gemm"] = gemm_rates(min(seconds, 2.0))
    table = Table("floor", info)
    echo(_head(info))
    options = {"batch": batch, "keep_heap": keep_heap}
    for name in models:
        plain, timed = (
            measure.run_in_subprocess(
                "compute.measure_train_step", model_name=name, seconds=seconds, path=p, **options
            )
            for p in ("plain", path)
        )
        profiled = measure.run_in_subprocess(
            "floor.measure_step_profile", model_name=name, path=path, steps=steps, **options
        )
        row = {"model": name, "path": path, "seconds": timed["seconds"], "gflop": timed["gflop"]}
        table.rows.append({**row, "plain_seconds": plain["seconds"], **profiled})
        for line in _notes(info, table.rows[-1]):
            echo(line)
    for line in format_floor(info, table.rows):  # the table, once every model is in
        if line.startswith("|"):
            echo(line)
    return table
