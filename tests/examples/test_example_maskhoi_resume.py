"""Resume equality with the real MaskHOI model (stochastic hybrid masking, progress schedule)."""

import pytest

from hoimask.data import SyntheticHOI, collate
from hoimask.engine import MemoryCache, TrainConfig, Trainer, seed_everything


@pytest.mark.slow
def test_maskhoi_resume_reproduces_losses(tmp_path):
    from hoimask.models import MaskHOI

    data = MemoryCache(SyntheticHOI(6, image_size=64, seed=0, num_sdf_points=64, num_object_points=32))
    config = TrainConfig(steps=4, batch_size=2, lr=1e-3, warmup_steps=1, checkpoint_every=2, log_every=1)

    def trainer(out):
        seed_everything(0)
        model = MaskHOI.from_preset("tiny", img_size=64)
        return Trainer(model, config, dataset=data, output_dir=out, collate_fn=collate, progress=False,
                       tensorboard=False)

    full = [h["loss"] for h in trainer(tmp_path / "full").fit()]
    trainer(tmp_path / "run").fit(stop_at=2)
    resumed = trainer(tmp_path / "run")
    assert resumed.resume() == 2
    assert [h["loss"] for h in resumed.fit()] == full[2:]
    assert len(set(full)) == 4  # the losses really change step to step
