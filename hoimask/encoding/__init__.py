"""Positional encodings: Fourier features of coordinates, sin-cos embeddings of patch grids."""

from hoimask.encoding.fourier import FourierEncoder, fourier_encode, fourier_frequencies
from hoimask.encoding.pos_embed import sincos_pos_embed_1d, sincos_pos_embed_2d

__all__ = [
    "FourierEncoder",
    "fourier_encode",
    "fourier_frequencies",
    "sincos_pos_embed_1d",
    "sincos_pos_embed_2d",
]
