"""`TrainerConfig`: the hyperparameters and hardware settings of the Trainer, checked at load."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from core.config_loader import ConfigError, check, one_of
from trainer.label_slice import SPLITS

OPTIMIZERS = ("adam", "adagrad")
INPUT_MODES = ("auto", "memory", "stream")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu", "parameter_server")
PRECISIONS = ("none", "auto", "mixed_float16", "mixed_bfloat16")
LR_RULES = ("none", "linear", "sqrt")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Hyperparameters of the two-tower retrieval and the ranking model."""

    embedding_dim: int = 64
    tower_layers: Tuple[int, ...] = (64,)
    epochs: int = 5  # the retrieval fit's epochs when early stopping is off
    batch_size: int = 512
    optimizer: str = "adam"  # adam | adagrad (the retrieval fit; the ranking fit uses Adam)
    learning_rate: float = 0.003
    temperature: float = 0.05
    logq_correction: bool = True
    # False: the query tower reads no user-id embedding (history bag + side features only); the
    # user-id input stays in the network's signature, unused.
    user_id_embedding: bool = False
    embedding_l2: float = 0.0  # L2 penalty on every embedding table of the two towers
    # Early stopping (trainer.early_stopping) on the label slice (trainer.label_slice): the
    # retrieval fit stops on Recall@`validation_cutoff` over the full catalog (each user's
    # fit-part items excluded), the ranking fit on the rating RMSE; the best epoch's weights are
    # kept. 0 = off: fixed `epochs` / `ranking_epochs`.
    early_stopping_patience: int = 2
    max_epochs: int = 30  # ceiling of the early-stopped retrieval fit
    ranking_max_epochs: int = 20  # ceiling of the early-stopped ranking fit
    validation_fraction: float = 0.2  # share of the train split in the label slice
    validation_cutoff: int = 20  # K of the validation Recall@K
    validation_max_users: int = 5000  # users scored by the validation Recall@K (a seeded sample above it)
    split: str = "time"  # time | random: how the label slice is cut (the pipeline sets the run's split)
    # True: after the fit-part fit, fresh networks are trained on the whole train split for the
    # epoch counts found and served; False: the fit-part networks are served.
    refit_on_all: bool = True
    remove_accidental_hits: bool = True
    ranking_layers: Tuple[int, ...] = (64, 32)
    ranking_cross_layers: int = 1
    ranking_low_rank: Optional[int] = None
    ranking_epochs: int = 3
    ranking_learning_rate: float = 0.003
    ranking_embedding_l2: float = 1e-4
    # The rating network predicts the residual over a bias model (global mean + regularised user
    # and item biases, fitted in closed form first; trainer.bias_model), so it starts at the
    # bias model's error. Ridge penalties of the biases:
    rating_bias: bool = True
    rating_bias_l2_user: float = 10.0
    rating_bias_l2_item: float = 10.0
    # Multitask (rating + retrieval), as in the TFRS multitask tutorial: one model trained for
    # `epochs` (`optimizer` at `learning_rate`) whose ranking network is built on the two towers
    # (no separate ranking fit, no ranking embeddings of its own).
    multitask: bool = False  # False: retrieval fit, then a separate DCN ranking fit (the default)
    multitask_rating_weight: float = 1.0  # weight of the rating (mean squared error) loss
    multitask_retrieval_weight: float = 1.0  # weight of the in-batch softmax retrieval loss
    candidates_to_rank: int = 100
    ranking_weight: float = 0.05  # final score = retrieval score + weight * predicted rating
    top_k: int = 100
    strategy: str = "auto"  # auto | default | mirrored | multi_worker | tpu | parameter_server
    # parameter_server (trainer.ps_training): variables of >= 2x this many bytes are split into
    # shards of >= this size, one per parameter server at most (the large embedding tables).
    ps_min_shard_bytes: int = 1 << 20
    seed: int = 7
    # Fault tolerance (trainer.fault_tolerance): each fit backs up its state every N steps, or at
    # each epoch's end when 0, and a restarted Trainer resumes from the last backup.
    backup_steps: int = 0
    # Hardware acceleration (trainer.distribution validates and logs these).
    tpu_address: str = ""  # TPU name or grpc://host:port; 'auto' then picks TPUStrategy
    mixed_precision: str = "none"  # none | auto (float16 on GPU, bfloat16 on TPU/CPU) | mixed_float16 | mixed_bfloat16
    jit_compile: bool = False  # XLA-compile the train step
    steps_per_execution: int = 1  # train steps fused into one compiled call
    lr_scaling: str = "none"  # none | linear | sqrt: learning rates x (batch_size / lr_base_batch_size)^p
    lr_base_batch_size: int = 512  # the batch size the learning rates were tuned at
    # Continuous training: epochs when the run starts from the previous blessed model's weights.
    warm_start_epochs: int = 1
    warm_start_ranking_epochs: int = 1
    # Input (trainer.streaming): 'memory' holds the transformed data as arrays (fastest, memory
    # grows with the data), 'stream' re-reads the files each epoch with bounded memory, 'auto'
    # streams above `stream_above_examples` training examples.
    input_mode: str = "auto"
    stream_above_examples: int = 2_000_000
    shuffle_buffer: int = 500_000  # serialized records in the streamed input's shuffle buffer

    def __post_init__(self) -> None:
        positive_ints = ("embedding_dim", "batch_size", "candidates_to_rank", "top_k",
                         "steps_per_execution", "lr_base_batch_size", "stream_above_examples", "shuffle_buffer",
                         "max_epochs", "ranking_max_epochs", "validation_cutoff", "validation_max_users",
                         "ps_min_shard_bytes")
        non_negative = ("backup_steps", "epochs", "ranking_epochs", "ranking_cross_layers", "warm_start_epochs", "warm_start_ranking_epochs",
                        "multitask_rating_weight", "multitask_retrieval_weight", "ranking_embedding_l2",
                        "ranking_weight", "early_stopping_patience", "embedding_l2", "rating_bias_l2_user",
                        "rating_bias_l2_item")
        positive = ("learning_rate", "temperature", "ranking_learning_rate")
        check("trainer", [
            *((getattr(self, n) >= 1, f"{n} must be >= 1, got {getattr(self, n)}") for n in positive_ints),
            *((getattr(self, n) >= 0, f"{n} must be >= 0, got {getattr(self, n)}") for n in non_negative),
            *((getattr(self, n) > 0, f"{n} must be > 0, got {getattr(self, n)}") for n in positive),
            *((all(u >= 1 for u in getattr(self, n)), f"{n} must hold layer widths >= 1, got {list(getattr(self, n))}")
              for n in ("tower_layers", "ranking_layers")),
            (self.ranking_low_rank is None or self.ranking_low_rank >= 1,
             f"ranking_low_rank must be >= 1 or null, got {self.ranking_low_rank}"),
            (one_of(self.strategy, STRATEGIES), f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"),
            (one_of(self.mixed_precision, PRECISIONS),
             f"mixed_precision must be one of {', '.join(PRECISIONS)}, got {self.mixed_precision!r}"),
            (one_of(self.lr_scaling, LR_RULES), f"lr_scaling must be one of {', '.join(LR_RULES)}, got {self.lr_scaling!r}"),
            (one_of(self.optimizer, OPTIMIZERS),
             f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            (one_of(self.split, SPLITS), f"split must be one of {', '.join(SPLITS)}, got {self.split!r}"),
            (0.0 < self.validation_fraction < 1.0,
             f"validation_fraction must lie strictly between 0 and 1, got {self.validation_fraction}"),
            (one_of(self.input_mode, INPUT_MODES),
             f"input_mode must be one of {', '.join(INPUT_MODES)}, got {self.input_mode!r}"),
        ])
        if self.multitask and not (self.multitask_rating_weight or self.multitask_retrieval_weight):
            raise ConfigError("trainer.multitask_rating_weight and trainer.multitask_retrieval_weight "
                              "are both 0: the multitask model would learn nothing")
