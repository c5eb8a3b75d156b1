"""The retrain's config: the best trial's, with the retrain's epochs, data and seed, and a schedule that fits."""
from types import SimpleNamespace as NS

import pytest

from sweep.retrain import retrain_config, reusable_checkpoint

BEST = {"model": "small_cnn", "epochs": 4, "scheduler": "cosine", "warmup_epochs": 2, "freeze_epochs": 3, "seed": 0}


@pytest.mark.parametrize("epochs,on_val,warmup,freeze,val", [(1, True, 0, 1, 0.0), (2, True, 1, 2, 0.0),
                                                               (10, False, 2, 3, 0.1)])
def test_retrain_config_fits_the_schedule(epochs, on_val, warmup, freeze, val):
    cfg = retrain_config(BEST, NS(retrain=NS(epochs=epochs, train_on_val=on_val)), seed=7)
    assert (cfg.epochs, cfg.warmup_epochs, cfg.freeze_epochs, cfg.val_fraction, cfg.seed) == \
        (epochs, warmup, freeze, val, 7)


@pytest.mark.parametrize("retrain,seed,status,reused", [
    (NS(epochs=4, train_on_val=False), 0, "completed", True),   # exactly what the trial did
    (NS(epochs=4, train_on_val=True), 0, "completed", False),   # more data
    (NS(epochs=5, train_on_val=False), 0, "completed", False),  # more epochs
    (NS(epochs=4, train_on_val=False), 1, "completed", False),  # another seed
    (NS(epochs=4, train_on_val=False), 0, "stopped_early", False),
])
def test_trial_checkpoint_reused_only_for_identical_work(retrain, seed, status, reused):
    from trainables.config import TrainConfig

    config = TrainConfig.from_dict(BEST).to_dict()
    best = {"checkpoint": "/some/ckpt", "status": status, "config": config}
    cfg = retrain_config(config, NS(retrain=retrain), seed=seed)
    assert (reusable_checkpoint(best, cfg) is not None) == reused
