"""Hybrids: models that combine families (latent diffusion: a VAE with a DDPM prior over its codes)."""
