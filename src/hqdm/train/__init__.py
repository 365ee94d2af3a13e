"""Training: the deterministic, resumable loop, checkpoints, transfer learning, sampling, the demo."""

from hqdm.train.checkpoint import (
    CheckpointError,
    StorageError,
    TrainState,
    find_checkpoints,
    latest_checkpoint,
    read_state,
    resolve_checkpoint,
    save_checkpoint,
)
from hqdm.train.generate import SampleResult, load_checkpoint_model, load_pipeline, sample_to_folder
from hqdm.train.setup import Phase, default_model_factory, load_training_images, plan_phases
from hqdm.train.trainer import NonFiniteLossError, RunDirError, RunResult, Trainer, train
from hqdm.train.transfer import TransferReport, transfer_weights

__all__ = [
    "CheckpointError",
    "NonFiniteLossError",
    "Phase",
    "RunDirError",
    "RunResult",
    "SampleResult",
    "StorageError",
    "TrainState",
    "Trainer",
    "TransferReport",
    "default_model_factory",
    "find_checkpoints",
    "latest_checkpoint",
    "load_checkpoint_model",
    "load_pipeline",
    "load_training_images",
    "plan_phases",
    "read_state",
    "resolve_checkpoint",
    "sample_to_folder",
    "save_checkpoint",
    "train",
    "transfer_weights",
]
