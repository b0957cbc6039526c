"""Long work shows signs of life: a study's console names the unit training in the kernel,
its epoch, pace and time left, redrawn on a terminal and one line per epoch in a log."""
import io

import numpy as np

from brainlib.config import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_one_line_per_epoch_and_no_carriage_return(tmp_path):
    log = io.StringIO()
    console = progress.StudyConsole(tmp_path, "07_segmentation", stream=log)
    reporter = progress.UnitProgress("unet-patient-none-fold2", 3, 4, tmp_path / progress.STATUS_FILE)
    reporter.write()
    console.poll()  # the unit started: no epoch yet, nothing to log
    for epoch, seconds in enumerate((10.0, 14.0, 12.0), 1):
        reporter.epoch_done(epoch, 6, seconds)
        console.poll()
        console.poll()  # the same epoch again: no second line
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in log.getvalue()
    assert lines[0].startswith("  07_segmentation: ")
    assert "training unet-patient-none-fold2 (unit 3 of 4): epoch 1 of 6, 10.0 s per epoch, " \
           "50 s left in this unit" in lines[0]
    assert "epoch 3 of 6, 12.0 s per epoch, 36 s left in this unit" in lines[2]


def test_a_terminal_gets_one_line_redrawn(tmp_path):
    screen = Terminal()
    reporter = progress.UnitProgress("vgg16-patient-none-fold0", 1, 2, tmp_path / progress.STATUS_FILE)
    with progress.StudyConsole(tmp_path, "04_training", stream=screen, interval_s=0.01) as console:
        reporter.epoch_done(1, 8, 100.0)
        console.poll()
        reporter.epoch_done(2, 8, 80.0)
        console.poll()
    text = screen.getvalue()
    assert "\n" not in text and text.count("\r") >= 3
    assert "epoch 2 of 8, 90.0 s per epoch, 9 min 00 s left in this unit" in text
    assert text.endswith("\r")  # the line is cleared when the notebook ends


def test_training_reports_each_epoch_to_the_run_folder_and_a_log(tmp_path, capsys):
    import keras
    import tensorflow as tf

    from brainlib.training import train

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    train.compile_model(model, "binary_crossentropy", ["accuracy"], learning_rate=0.01,
                        lr_decay=0.0, batch_size=8, n_train=8)
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.array([0, 1] * 4)
    seen = []

    def batches(epoch):
        seen.append(progress.read_status(tmp_path))  # what a watcher sees as the epoch starts
        return tf.data.Dataset.from_tensors((x, y))

    with progress.unit("toy-fold0", 1, 1, tmp_path, lines=True):
        train.fit_epochs(model, batches, 2, keep_best=False, progress=True)
    assert [s["epoch"] for s in seen] == [0, 1] and seen[1]["epochs"] == 2
    assert progress.read_status(tmp_path) is None  # gone once the unit is done
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].split(",")[0] for line in lines] == [" epoch 1 of 2", " epoch 2 of 2"]


def test_bars_only_where_they_can_be_redrawn():
    steps = range(3)
    assert progress.bar(steps, "units", "unit") is steps  # pytest's captured stderr: a log
    assert progress.bar(steps, "units", "unit", enabled=False) is steps
    assert progress.duration(59.6) == "1 min 00 s" and progress.duration(12) == "12 s"
