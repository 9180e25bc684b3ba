"""Positional encodings: Fourier features of coordinates, sin-cos embeddings of patch grids and their resizing."""

from hoimask.encoding.fourier import FourierEncoder, fourier_encode, fourier_frequencies
from hoimask.encoding.pos_embed import (
    POS_EMBED_RESIZE_METHODS,
    resize_pos_embed_2d,
    sincos_pos_embed_1d,
    sincos_pos_embed_2d,
)

__all__ = [
    "POS_EMBED_RESIZE_METHODS",
    "FourierEncoder",
    "fourier_encode",
    "fourier_frequencies",
    "resize_pos_embed_2d",
    "sincos_pos_embed_1d",
    "sincos_pos_embed_2d",
]
