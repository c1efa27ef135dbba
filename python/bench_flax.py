#!/usr/bin/env python3
"""Times the seed's ResidualBlock, DenseBlock, U-Net or CustomVAE in Flax NNX (``nnx.jit``),
the reference of ``cargo run --release --example bench_conv`` and ``--example bench_vae``.

    python3 python/bench_flax.py [--workload residual_block|dense_block|unet|vae]
        [--batch 16] [--steps 60] [--warmup 5] [--threads 1]

Workloads (as ``examples/bench_conv.rs``): the seed's ResidualBlock(64, stride=2,
downsample=True), or its DenseBlock(64, 32, 4), on NHWC inputs (batch, 32, 32, 64)
uniform in [0, 1); or its UNetEncoder + UNetDecoder with channels [3, 32, 64, 128] on
(batch, 32, 32, 3); train-mode BatchNorm, loss mean(out**2), optax Adam(1e-3), f32 on the
CPU; and the eval-mode forward (running averages). ``vae`` (as ``examples/bench_vae.rs``):
the seed's CustomVAE((28, 28, 1), 20, [512, 256, 128], [128, 256, 512]) on (batch, 28, 28,
1) uniform inputs with the seed's ``custom_vae_loss`` (beta 1), Adam(1e-3); its "eval" is
decoding ``batch`` latents. The step is jitted with ``nnx.jit`` as a Flax user writes it;
compilation happens in the warm-up and is not timed.

Prints the CPU and the library versions, then one machine-readable line that the
Rust benchmark reads:

    flax residual_block batch=16 train_steps_per_s=29.1 eval_per_s=95.3
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _threads_from_argv() -> int | None:
    """``--threads N`` (read before jax is imported: XLA reads its flags once)."""
    if "--threads" in sys.argv:
        return int(sys.argv[sys.argv.index("--threads") + 1])
    return None


if _threads_from_argv() == 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_cpu_multi_thread_eigen=false").strip()

import flax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class ResidualBlock(nnx.Module):
    """The seed's ResidualBlock (custom-architectures.md), code unchanged."""

    def __init__(self, channels: int, *, stride: int = 1, downsample: bool = False,
                 activation: callable = nnx.relu, rngs: nnx.Rngs):
        super().__init__()
        self.activation = activation
        self.conv1 = nnx.Conv(in_features=channels, out_features=channels,
                              kernel_size=(3, 3), strides=(stride, stride),
                              padding="SAME", rngs=rngs)
        self.bn1 = nnx.BatchNorm(num_features=channels, rngs=rngs)
        self.conv2 = nnx.Conv(in_features=channels, out_features=channels,
                              kernel_size=(3, 3), strides=(1, 1), padding="SAME",
                              rngs=rngs)
        self.bn2 = nnx.BatchNorm(num_features=channels, rngs=rngs)
        if downsample:
            self.shortcut = nnx.Conv(in_features=channels, out_features=channels,
                                     kernel_size=(1, 1), strides=(stride, stride),
                                     padding="VALID", rngs=rngs)
            self.shortcut_bn = nnx.BatchNorm(num_features=channels, rngs=rngs)
        else:
            self.shortcut = None

    def __call__(self, x: jax.Array, *, use_running_average: bool = False) -> jax.Array:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out, use_running_average=use_running_average)
        out = self.activation(out)
        out = self.conv2(out)
        out = self.bn2(out, use_running_average=use_running_average)
        if self.shortcut is not None:
            identity = self.shortcut(identity)
            identity = self.shortcut_bn(identity, use_running_average=use_running_average)
        out = out + identity
        out = self.activation(out)
        return out


class DenseBlock(nnx.Module):
    """The seed's DenseBlock (custom-architectures.md) with one fix, as in
    make_fixtures.py's F1/F2: NNX 0.12 refuses plain Python lists of Modules as
    attributes, so ``self.layers`` and each ``[BatchNorm, Conv]`` pair are ``nnx.List``s
    (indexing and iteration are unchanged)."""

    def __init__(self, in_channels: int, growth_rate: int, num_layers: int, *,
                 rngs: nnx.Rngs):
        super().__init__()
        self.growth_rate = growth_rate
        self.layers = nnx.List()
        for i in range(num_layers):
            layer_in_channels = in_channels + i * growth_rate
            layer = nnx.List([
                nnx.BatchNorm(layer_in_channels, rngs=rngs),
                nnx.Conv(in_features=layer_in_channels, out_features=growth_rate,
                         kernel_size=(3, 3), padding="SAME", rngs=rngs),
            ])
            self.layers.append(layer)

    def __call__(self, x: jax.Array, *, use_running_average: bool = False) -> jax.Array:
        features = [x]
        for layer in self.layers:
            out = layer[0](x, use_running_average=use_running_average)
            out = nnx.relu(out)
            out = layer[1](out)
            features.append(out)
            x = jnp.concatenate(features, axis=-1)
        return x


class UNetEncoder(nnx.Module):
    """The seed's UNetEncoder with the fix F1/F2: ``self.down_blocks`` and each
    ``[Conv, BatchNorm]`` pair are ``nnx.List``s."""

    def __init__(self, channels_list: list[int], *, rngs: nnx.Rngs):
        super().__init__()
        self.down_blocks = nnx.List()
        for i in range(len(channels_list) - 1):
            in_channels = channels_list[i]
            out_channels = channels_list[i + 1]
            block = nnx.List([
                nnx.Conv(in_features=in_channels, out_features=out_channels,
                         kernel_size=(3, 3), strides=(2, 2), padding="SAME", rngs=rngs),
                nnx.BatchNorm(out_channels, rngs=rngs),
            ])
            self.down_blocks.append(block)

    def __call__(self, x: jax.Array, *, use_running_average: bool = False):
        skip_connections = []
        for block in self.down_blocks:
            skip_connections.append(x)
            x = block[0](x)
            x = block[1](x, use_running_average=use_running_average)
            x = nnx.relu(x)
        return x, skip_connections


class UNetDecoder(nnx.Module):
    """The seed's UNetDecoder with the fix F1/F2 (``nnx.List``s) and the one the seed's code
    needs to run at all: each ConvTranspose after the first takes the concatenated skip's
    channels too (``skip_channels``, the encoder's ``channels_list[:-1]``, as artifex's
    ``UNetDecoder::new(channels_list, skip_channels)``)."""

    def __init__(self, channels_list: list[int], skip_channels: list[int], *,
                 rngs: nnx.Rngs):
        super().__init__()
        self.up_blocks = nnx.List()
        for i in range(len(channels_list) - 1):
            skip = skip_channels[-i] if i > 0 else 0
            in_channels = channels_list[i] + skip
            out_channels = channels_list[i + 1]
            block = nnx.List([
                nnx.ConvTranspose(in_features=in_channels, out_features=out_channels,
                                  kernel_size=(3, 3), strides=(2, 2), padding="SAME",
                                  rngs=rngs),
                nnx.BatchNorm(out_channels, rngs=rngs),
            ])
            self.up_blocks.append(block)

    def __call__(self, x: jax.Array, skip_connections: list[jax.Array], *,
                 use_running_average: bool = False) -> jax.Array:
        for i, block in enumerate(self.up_blocks):
            x = block[0](x)
            x = block[1](x, use_running_average=use_running_average)
            x = nnx.relu(x)
            if i < len(skip_connections):
                skip = skip_connections[-(i + 1)]
                x = jnp.concatenate([x, skip], axis=-1)
        return x


class UNet(nnx.Module):
    """Encoder and decoder of channels [3, 32, 64, 128] (bench_conv's ``--workload unet``)."""

    def __init__(self, channels: list[int], *, rngs: nnx.Rngs):
        super().__init__()
        self.encoder = UNetEncoder(channels, rngs=rngs)
        self.decoder = UNetDecoder(channels[::-1], channels[:-1], rngs=rngs)

    def __call__(self, x: jax.Array, *, use_running_average: bool = False) -> jax.Array:
        h, skips = self.encoder(x, use_running_average=use_running_average)
        return self.decoder(h, skips, use_running_average=use_running_average)


UNET_CHANNELS = [3, 32, 64, 128]


def build(workload: str) -> nnx.Module:
    """The model of ``--workload``, as examples/bench_conv.rs / bench_vae.rs build it."""
    if workload == "dense_block":
        return DenseBlock(64, 32, 4, rngs=nnx.Rngs(0))
    if workload == "unet":
        return UNet(UNET_CHANNELS, rngs=nnx.Rngs(0))
    if workload == "vae":
        from make_fixtures import CustomVAE  # the seed's class with fix F1
        return CustomVAE((28, 28, 1), 20, [512, 256, 128], [128, 256, 512], rngs=nnx.Rngs(0))
    return ResidualBlock(64, stride=2, downsample=True, rngs=nnx.Rngs(0))


def input_shape(workload: str, batch: int) -> tuple[int, ...]:
    """The NHWC input of ``--workload``."""
    if workload == "unet":
        return (batch, 32, 32, UNET_CHANNELS[0])
    if workload == "vae":
        return (batch, 28, 28, 1)
    return (batch, 32, 32, 64)


def cpu_line() -> str:
    """CPU model and SIMD flags (Linux /proc/cpuinfo; platform string elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines()
                  if line.startswith("flags")), [])
    simd = [f for f in flags if f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                                       "avx512_vnni", "avx512_bf16", "amx_tile")]
    return f"{model}; {os.cpu_count()} CPUs; {' '.join(simd)}"


def timed(fn, steps: int) -> float:
    """Calls per second of ``fn`` (which returns a jax array to wait on)."""
    start = time.perf_counter()
    out = None
    for _ in range(steps):
        out = fn()
    jax.block_until_ready(out)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["residual_block", "dense_block", "unet", "vae"],
                        default="residual_block")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="1: XLA on one thread (as RAYON_NUM_THREADS=1 for candle); "
                             "default: XLA's own choice (all CPUs)")
    args = parser.parse_args()

    print(f"cpu: {cpu_line()}")
    print(f"threads: {args.threads or os.cpu_count()}")
    print(f"python {platform.python_version()}, jax {jax.__version__}, "
          f"flax {flax.__version__}, optax {optax.__version__}, numpy {np.__version__}")

    model = build(args.workload)
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(0).random(input_shape(args.workload, args.batch),
                                                     dtype=np.float32))

    def loss_fn(model, x):
        if args.workload == "vae":
            # The seed's custom_vae_loss with beta 1.
            out = model(x)
            recon = jnp.mean((x - out["reconstruction"]) ** 2)
            kl = -0.5 * jnp.mean(1 + out["logvar"] - out["mean"] ** 2
                                 - jnp.exp(out["logvar"]))
            return recon + kl
        return jnp.mean(model(x) ** 2)

    @nnx.jit
    def train_step(model, optimizer, x):
        loss, grads = nnx.value_and_grad(loss_fn)(model, x)
        optimizer.update(model, grads)
        return loss

    @nnx.jit
    def eval_forward(model, x):
        if args.workload == "vae":
            z = x.reshape(x.shape[0], -1)[:, :20]
            return model.decode(z, use_running_average=True)
        return model(x, use_running_average=True)

    for _ in range(args.warmup):
        jax.block_until_ready(train_step(model, optimizer, x))
        jax.block_until_ready(eval_forward(model, x))
    train = timed(lambda: train_step(model, optimizer, x), args.steps)
    evals = timed(lambda: eval_forward(model, x), args.steps)
    print(f"flax {args.workload} batch={args.batch} train_steps_per_s={train:.2f} "
          f"eval_per_s={evals:.2f}")


if __name__ == "__main__":
    main()
