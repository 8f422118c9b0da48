"""A fit interrupted mid-epoch resumes from its last backup (`trainer.fault_tolerance`), in process;
the Trainer gives every fit its backup."""

from __future__ import annotations

import pytest


class _Interrupted(Exception):
    pass


def _model():
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(3,))])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss="mse")
    return model


def test_an_interrupted_fit_resumes_from_its_last_backup(tmp_path):
    import numpy as np
    import tensorflow as tf

    from trainer import fault_tolerance

    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices((rng.random((40, 3)), rng.random((40, 1)))).batch(4).repeat()
    seen = {}

    class Stop(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 7:  # mid-way through the second epoch
                raise _Interrupted()

    class Record(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["start"] = int(self.model.optimizer.iterations.numpy())

    with pytest.raises(_Interrupted):
        _model().fit(data, epochs=2, steps_per_epoch=5, verbose=0,
                     callbacks=[*fault_tolerance.backup_callbacks(str(tmp_path), "retrieval", 2), Stop()])
    resumed = _model()
    history = resumed.fit(data, epochs=2, steps_per_epoch=5, verbose=0,
                          callbacks=[*fault_tolerance.backup_callbacks(str(tmp_path), "retrieval", 2), Record()])
    assert seen["start"] == 6  # the backup of step 6, not step 0
    assert int(resumed.optimizer.iterations.numpy()) == 10
    assert len(history.history["loss"]) == 1  # only the second epoch ran


def test_backups_every_epoch_unless_steps_are_given():
    from trainer import fault_tolerance

    assert fault_tolerance.save_frequency(0) == "epoch"
    assert fault_tolerance.save_frequency(25) == 25


def test_every_fit_of_the_trainer_backs_up_first_under_its_run_dir(tmp_path):
    import tensorflow as tf

    from trainer import entry, fault_tolerance

    make = entry._stage_callbacks(str(tmp_path), entry.FIT_PART_SUBDIR, {}, backup_steps=3)
    for stage in ("retrieval", "ranking"):
        backup, board = make(stage)
        assert isinstance(backup, tf.keras.callbacks.BackupAndRestore)
        assert isinstance(board, tf.keras.callbacks.TensorBoard)
        assert backup.backup_dir == fault_tolerance.backup_dir(str(tmp_path), f"fit_part/{stage}")
        assert backup.save_freq == 3
