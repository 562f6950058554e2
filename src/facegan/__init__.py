"""facegan: train face-generating GANs, from the 2022 thesis DCGAN onwards, and use them."""

__version__ = "0.1.0"
