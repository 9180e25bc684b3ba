"""Hand models: the MANO layer (official assets, no chumpy) and a licence-free procedural hand.

``import hoimask.hand`` stays light: it imports torch and NumPy only.
"""

from hoimask.hand._unpickle import UnsafePickleError
from hoimask.hand.assets import MANO_ARRAY_SPECS, load_mano_arrays, to_npz
from hoimask.hand.kinematics import forward_kinematics, linear_blend_skinning
from hoimask.hand.mano import FINGERTIP_VERTEX_IDS, MANOLayer, mano_skin
from hoimask.hand.output import HandOutput

__all__ = [
    "FINGERTIP_VERTEX_IDS",
    "HandOutput",
    "MANOLayer",
    "MANO_ARRAY_SPECS",
    "UnsafePickleError",
    "forward_kinematics",
    "linear_blend_skinning",
    "load_mano_arrays",
    "mano_skin",
    "to_npz",
]
