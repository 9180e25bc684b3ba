"""Composed models: the MaskHOI pre-training model, the plain MAE baseline, the HandMIM
pre-training model (student + EMA teacher) and its fine-tuning model (a keypoint
feedback loop), HOISDF (the fine-tuning model of MaskHOI's Table IV) and a
direct-regression pose model.

Imports only what they compose: :mod:`hoimask.nn`, :mod:`hoimask.losses`,
:mod:`hoimask.masking`, :mod:`hoimask.geometry`, :mod:`hoimask.encoding` and
(when a model is built or run) :mod:`hoimask.hand` and :mod:`hoimask.data` (HandMIM's views).
"""

from hoimask.models.config import (
    DEFAULT_GROUP_WEIGHTS,
    DEFAULT_TERM_WEIGHTS,
    MASKHOI_PRESETS,
    MaskHOIConfig,
)
from hoimask.models.handmim import HandMIM
from hoimask.models.handmim_config import (
    HANDMIM_LOSS_WEIGHTS,
    HANDMIM_PRESETS,
    HANDMIM_STEPS_PER_EPOCH,
    HandMIMConfig,
)
from hoimask.models.handmim_head import HANDMIM_HEAD_LOSS_WEIGHTS, HandMIMPoseModel
from hoimask.models.hoisdf import HOISDF
from hoimask.models.hoisdf_config import HOISDF_LOSS_WEIGHTS, HOISDF_PRESETS, HOISDFConfig
from hoimask.models.mae import MAE, MAE_PRESETS
from hoimask.models.maskhoi import MaskHOI, build_hand_layer
from hoimask.models.pose_regression import POSE_LOSS_WEIGHTS, PoseRegressionModel
from hoimask.models.unihope import UniHOPE
from hoimask.models.unihope_config import UNIHOPE_LOSS_WEIGHTS, UNIHOPE_PRESETS, UniHOPEConfig

__all__ = [
    "DEFAULT_GROUP_WEIGHTS",
    "DEFAULT_TERM_WEIGHTS",
    "HANDMIM_HEAD_LOSS_WEIGHTS",
    "HANDMIM_LOSS_WEIGHTS",
    "HANDMIM_PRESETS",
    "HANDMIM_STEPS_PER_EPOCH",
    "HOISDF",
    "HOISDFConfig",
    "HOISDF_LOSS_WEIGHTS",
    "HOISDF_PRESETS",
    "HandMIM",
    "HandMIMConfig",
    "HandMIMPoseModel",
    "MAE",
    "MAE_PRESETS",
    "MASKHOI_PRESETS",
    "MaskHOI",
    "MaskHOIConfig",
    "POSE_LOSS_WEIGHTS",
    "PoseRegressionModel",
    "build_hand_layer",
    "UNIHOPE_LOSS_WEIGHTS",
    "UNIHOPE_PRESETS",
    "UniHOPE",
    "UniHOPEConfig",
]
