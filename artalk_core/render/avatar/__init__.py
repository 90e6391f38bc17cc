"""The GAGAvatar photoreal head renderer (pure PyTorch): per-avatar Gaussians from a tracked photo,
FLAME-driven expression Gaussians per frame, a 32-channel Gaussian rasterizer and the StyleUNet
upsampler. Heavy imports happen inside the submodules' functions."""
