"""One task of a loopback training cluster (or the one-process baseline), run as its own process.

    TF_CONFIG=... python -m tests.distributed.cluster_worker --transform-dir D --train-pattern P \
        --strategy multi_worker --input-mode memory --steps 5 --out DIR --name chief

Builds the strategy first (from TF_CONFIG, before any other TensorFlow op), then the Trainer's
inputs (`trainer.holdout_inputs.training_inputs`) over the tiny transformed data and, from the
fit part's example source, the per-worker input of a cluster (`trainer.multi_worker`; with the
default strategy its one pipeline); fits the retrieval and the ranking model through
`trainer.train.train` for `--epochs` epochs of `--steps` steps each, with the Trainer's backups
(`trainer.fault_tolerance`) under `--backup-dir` when given. `--pause-at-step K` makes the task
write `DIR/<name>.paused` once the retrieval fit's step counter reaches K and then wait there
(at most `PAUSE_S`) for the test to kill it.

Writes `DIR/<name>.json`: each fit's loss after every step it ran, the optimizer's step counter
when each fit began (after any restore) and ended, the largest weight change, and each fit's
loss over the whole fit part in fixed batches after training; and `DIR/<name>.npz`: every
weight of the three networks, in order.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Dict, List

from core import features as F

PAUSE_S = 120


def _config(args):
    from trainer.config import TrainerConfig

    return TrainerConfig(
        embedding_dim=8, tower_layers=(16,), ranking_layers=(16,), batch_size=args.batch_size, epochs=args.epochs,
        ranking_epochs=args.epochs if args.ranking_epochs is None else args.ranking_epochs, learning_rate=0.1, ranking_learning_rate=0.01, temperature=0.5,
        input_mode=args.input_mode, shuffle_buffer=64, seed=args.seed, strategy=args.strategy,
        backup_steps=args.backup_steps,
    )


def _data_losses(trained, fit_arrays, cfg, probabilities) -> Dict[str, float]:
    """Each fit's mean loss per example over the whole fit part (file order, batches of 64), on one device."""
    from trainer import inputs
    from trainer import model as models

    retrieval = models.RetrievalModel(trained.query_tower, trained.candidate_tower, item_probabilities=probabilities,
                                      temperature=cfg.temperature, remove_accidental_hits=cfg.remove_accidental_hits)
    ranking = models.RankingModel(trained.ranking_model)
    totals = {"retrieval": 0.0, "ranking": 0.0}
    examples = len(fit_arrays[F.ITEM_ID_XF])
    for batch in inputs.array_dataset(fit_arrays, 64):
        size = int(batch[F.ITEM_ID_XF].shape[0])
        totals["retrieval"] += float(retrieval.compute_loss(batch))  # a sum over the batch
        totals["ranking"] += float(ranking.compute_loss(batch)) * size  # a mean over the batch
    return {stage: total / examples for stage, total in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transform-dir", required=True)
    parser.add_argument("--train-pattern", required=True)
    parser.add_argument("--strategy", default="multi_worker")
    parser.add_argument("--input-mode", default="memory", choices=("memory", "stream"))
    parser.add_argument("--steps", type=int, default=5, help="steps of each epoch")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--ranking-epochs", type=int, default=None, help="default: --epochs")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--backup-dir", default="")
    parser.add_argument("--backup-steps", type=int, default=0)
    parser.add_argument("--pause-at-step", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    from core.process import set_up_process

    set_up_process()
    from trainer import distribution

    cfg = _config(args)
    strategy = distribution.choose_strategy(cfg.strategy)
    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft

    from trainer import export, fault_tolerance, holdout_inputs, inputs, multi_worker, train

    tft_output = tft.TFTransformOutput(args.transform_dir)
    vocab = inputs.vocabularies(tft_output)
    pattern = args.train_pattern
    data = holdout_inputs.training_inputs(pattern, pattern, tft_output, vocab, cfg)
    creator = multi_worker.dataset_creator(data.fit_source, tft_output, cfg)
    losses: Dict[str, List[float]] = {}
    counters: Dict[str, List[int]] = {}
    os.makedirs(args.out, exist_ok=True)

    class Record(tf.keras.callbacks.Callback):
        def __init__(self, stage: str) -> None:
            super().__init__()
            self.stage = stage

        def on_train_begin(self, logs=None):
            counters[self.stage] = [int(self.model.optimizer.iterations.numpy())]

        def on_train_batch_end(self, batch, logs=None):
            losses.setdefault(self.stage, []).append(float(logs["loss"]))
            step = int(self.model.optimizer.iterations.numpy())
            if args.pause_at_step and self.stage == "retrieval" and step >= args.pause_at_step:
                with open(os.path.join(args.out, f"{args.name}.paused"), "w") as handle:
                    handle.write(str(step))
                time.sleep(PAUSE_S)  # the test kills this process here
                raise RuntimeError(f"{args.name} was not killed within {PAUSE_S}s of pausing")

        def on_train_end(self, logs=None):
            counters[self.stage].append(int(self.model.optimizer.iterations.numpy()))

    def callbacks(stage: str) -> List[tf.keras.callbacks.Callback]:
        backup = fault_tolerance.backup_callbacks(args.backup_dir, stage, args.backup_steps) if args.backup_dir else []
        return [*backup, Record(stage)]

    initial: List[np.ndarray] = []

    def keep_initial(networks: Dict[str, tf.keras.Model]) -> None:
        initial.extend(w for name in export.NETWORKS for w in networks[name].get_weights())

    trained = train.train(creator, None, vocab, cfg, item_probabilities=data.fit_probabilities, strategy=strategy,
                          callbacks=callbacks, steps_per_epoch=args.steps, initialize=keep_initial)
    weights = [w for net in (trained.query_tower, trained.candidate_tower, trained.ranking_model)
               for w in net.get_weights()]
    change = max(float(np.max(np.abs(a - b))) for a, b in zip(weights, initial))
    memory = holdout_inputs.training_inputs(pattern, pattern, tft_output, vocab, dataclasses.replace(cfg, input_mode="memory"))
    np.savez(os.path.join(args.out, f"{args.name}.npz"), *weights)
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as handle:
        json.dump({"losses": losses, "counters": counters, "replicas": strategy.num_replicas_in_sync,
                   "max_weight_change": change,
                   "data_loss": _data_losses(trained, memory.fit_source.arrays, cfg, data.fit_probabilities)}, handle)


if __name__ == "__main__":
    main()
