"""isovolnet_jax: compact convolutional networks in JAX/Flax."""
