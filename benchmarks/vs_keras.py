"""The thesis's own Keras DCGAN against facegan's `thesis128`, side by side in one run.

    bash benchmarks/vs_keras.sh [--seconds 20] [--rounds 2] [--batch 16] [--threads 2] [--variants fast bf16_channels_last]

vs_keras.sh makes (once) a virtual environment with tensorflow-cpu in .venv-keras
(facegan itself never depends on TensorFlow) and runs this script with facegan's
Python, naming that environment's Python with --keras-python. Each round times
facegan's training step for each variant here, then the Keras step in a child process
of the TensorFlow environment (this file with --keras), on the same machine, batch
and thread count; rounds alternate so that both see the same background load. The
Keras code is the thesis's: Sequential networks layer for layer as `thesis128`
(G 14,175,491 and D 2,789,313 parameters), binary cross-entropy from logits, Adam 1e-4,
and one step that takes both networks' gradients from one forward pass with two
GradientTapes inside a tf.function, as the TensorFlow DCGAN tutorial it followed.
Prints a JSON line per measurement, the machine, then the medians and facegan's ratio
to Keras per variant.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

Z_DIM, SIZE = 128, 128


def keras_step_rate(batch: int, seconds: float, threads: int) -> dict:
    """Images/s of the thesis's Keras training step (run inside the TensorFlow environment)."""
    import numpy as np
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from tensorflow import keras
    from tensorflow.keras import layers

    generator = keras.Sequential([keras.Input((Z_DIM,)), layers.Dense(8 * 8 * 128), layers.Reshape((8, 8, 128))]
                                 + [x for f in (1024, 512, 256, 128)
                                    for x in (layers.Conv2DTranspose(f, 4, strides=2, padding="same"), layers.LeakyReLU(0.2))]
                                 + [layers.Conv2D(3, 5, padding="same", activation="sigmoid")])
    discriminator = keras.Sequential([keras.Input((SIZE, SIZE, 3))]
                                     + [x for f in (64, 128, 256, 512)
                                        for x in (layers.Conv2D(f, 4, strides=2, padding="same"), layers.LeakyReLU(0.2))]
                                     + [layers.Flatten(), layers.Dropout(0.2), layers.Dense(1)])
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    g_optimizer, d_optimizer = keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(images):
        noise = tf.random.normal([batch, Z_DIM])
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fakes = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(fakes, training=True)
            g_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            d_loss = (cross_entropy(tf.ones_like(real_output), real_output)
                      + cross_entropy(tf.zeros_like(fake_output), fake_output))
        g_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, generator.trainable_variables),
                                        generator.trainable_variables))
        d_optimizer.apply_gradients(zip(d_tape.gradient(d_loss, discriminator.trainable_variables),
                                        discriminator.trainable_variables))
        return g_loss, d_loss

    images = tf.constant(np.random.default_rng(0).random((batch, SIZE, SIZE, 3), dtype=np.float32))
    for _ in range(2):  # tracing and the first allocations
        train_step(images)
    started = time.perf_counter()
    train_step(images)[0].numpy()
    steps = max(3, round(seconds / (time.perf_counter() - started)))
    started = time.perf_counter()
    for _ in range(steps):
        losses = train_step(images)
    float(losses[0].numpy())
    elapsed = time.perf_counter() - started
    return {"tensorflow": tf.__version__, "steps": steps, "images_per_s": round(steps * batch / elapsed, 3),
            "parameters": [generator.count_params(), discriminator.count_params()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", action="store_true", help="(inside the TensorFlow environment) time Keras only")
    parser.add_argument("--keras-python", help="the Python of an environment with tensorflow-cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="*", default=["fast"], help="facegan speed variants (train_speed.py's)")
    args = parser.parse_args()
    if args.keras:
        print(json.dumps(keras_step_rate(args.batch, args.seconds, args.threads)))
        return
    if not args.keras_python:
        raise SystemExit("give --keras-python (benchmarks/vs_keras.sh makes the environment and passes it)")

    import torch
    from machine import describe
    from train_speed import time_training

    torch.set_num_threads(args.threads)
    case = f"thesis128:{args.batch}"
    rates: dict[str, list[float]] = {name: [] for name in [*args.variants, "keras"]}
    for round_ in range(args.rounds):
        for variant in args.variants:
            measured = time_training(case, variant, torch.device("cpu"), args.seconds, 1)
            rate = measured["steps"] * args.batch / measured["seconds"]
            rates[variant].append(rate)
            print(json.dumps({"bench": "vs_keras", "round": round_, "code": "facegan", "variant": variant,
                              "plan": measured["plan"], "images_per_s": round(rate, 3)}), flush=True)
        found = subprocess.run([args.keras_python, __file__, "--keras", "--batch", str(args.batch),
                                "--seconds", str(args.seconds), "--threads", str(args.threads)],
                               capture_output=True, text=True, check=False)
        if found.returncode != 0:
            raise SystemExit(f"the Keras run failed:\n{found.stderr[-2000:]}")
        keras = json.loads(found.stdout.strip().splitlines()[-1])
        rates["keras"].append(keras["images_per_s"])
        print(json.dumps({"bench": "vs_keras", "round": round_, "code": "keras (the thesis)", **keras}), flush=True)
    print(json.dumps({"bench": "vs_keras", "machine": describe(), "threads": args.threads, "batch": args.batch}))
    keras_rate = statistics.median(rates["keras"])
    print(f"\nthesis128, batch {args.batch}, {args.threads} threads, median of {args.rounds} rounds of {args.seconds:g} s")
    print(f"{'code':<34}{'images/s':>10}{'vs Keras':>10}")
    print(f"{'Keras (the thesis, two tapes)':<34}{keras_rate:>10.2f}{'1.00x':>10}")
    for variant in args.variants:
        rate = statistics.median(rates[variant])
        print(f"{'facegan ' + variant:<34}{rate:>10.2f}{rate / keras_rate:>9.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
