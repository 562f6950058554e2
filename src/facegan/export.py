"""``facegan export``: a trained generator on its own, for other programs.

Two formats: a generator file (safetensors weights with the settings that rebuild them,
``facegan.generator_file``), which facegan and anything reading safetensors can load;
and ONNX, the network itself, which runs without Python or PyTorch (onnxruntime,
browsers, phones). The ONNX graph takes ``z`` (N, z_dim) float32, and ``labels`` (N,
attributes) 0/1 float32 for a conditional model, for any N, and returns ``images`` (N,
3, H, W) in the generator's output range, recorded in the file's metadata.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facegan import files, sample
from facegan import config as cfg
from facegan.conditions import Conditions
from facegan.errors import FaceganError

ONNX_TOLERANCE = 1e-4  # largest difference from PyTorch's pixels, in the output range (about 0.01 of a uint8 level)
CHECK_SAMPLES = 16


def half_precision_error(generator: torch.nn.Module, conditions: Conditions | None, n: int = 64,
                         seed: int = 0) -> dict[str, float]:
    """How far the generator's uint8 images move when its weights are rounded to fp16
    (and used as fp32 again), over ``n`` faces: the largest and the mean change in levels,
    and the share of pixels that change at all."""
    rounded = {k: v.half().float() if v.is_floating_point() else v for k, v in generator.state_dict().items()}
    device = next(generator.parameters()).device
    labels = conditions.sample(n, seed) if conditions is not None else None
    exact = sample.generate(generator, n, seed, device, labels=labels).astype(np.int16)
    original = {k: v.clone() for k, v in generator.state_dict().items()}
    try:
        generator.load_state_dict(rounded)
        approx = sample.generate(generator, n, seed, device, labels=labels).astype(np.int16)
    finally:
        generator.load_state_dict(original)
    change = np.abs(exact - approx)
    return {"faces": n, "max_levels": int(change.max()), "mean_levels": float(change.mean()),
            "changed_share": float((change > 0).mean())}


def to_onnx(generator: torch.nn.Module, config: cfg.Config, conditions: Conditions | None, out: str | Path) -> None:
    """Write the generator as ONNX (opset chosen by PyTorch's exporter, batch size free)."""
    try:
        import onnx  # noqa: F401  (the exporter needs both)
        import onnxscript  # noqa: F401
    except ImportError:
        raise FaceganError("ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript "
                           "onnxruntime (from a checkout of facegan: pip install -e '.[export]')") from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    generator = generator.to("cpu").eval()
    batch = torch.export.Dim("n", min=1, max=4096)
    z = torch.randn(2, generator.z_dim)
    if conditions is None:
        args, names, shapes = (z,), ["z"], ({0: batch},)
    else:
        args, names, shapes = (z, torch.zeros(2, len(conditions.names))), ["z", "labels"], ({0: batch}, {0: batch})
    chatter = logging.getLogger("torch.onnx")  # "torchvision is not installed", which nothing here needs
    level = chatter.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes about its own internals
        chatter.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(generator, args, input_names=names, output_names=["images"],
                                        dynamic_shapes=shapes, dynamo=True, verbose=False)
        finally:
            chatter.setLevel(level)
    model = program.model_proto
    for key, value in (("facegan_config", json.dumps(config.to_dict())),
                       ("output_range", json.dumps(list(generator.output_range))),
                       ("attributes", json.dumps(list(conditions.names) if conditions else []))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    blob = model.SerializeToString()
    try:
        files.atomic_write(out, lambda f: f.write(blob))
    except OSError as e:
        raise FaceganError(f"cannot write {out}: {files.describe(e, out.parent)}") from None


def onnx_difference(path: str | Path, generator: torch.nn.Module, conditions: Conditions | None,
                    n: int = CHECK_SAMPLES, seed: int = 0) -> float:
    """The largest difference between the ONNX file's images (run by onnxruntime) and
    PyTorch's, for the same ``n`` latents (and labels)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    z = sample.latents(n, generator.z_dim, seed)
    feeds: dict[str, Any] = {"z": z.numpy()}
    labels = None
    if conditions is not None:
        labels = torch.as_tensor(conditions.sample(n, seed))
        feeds["labels"] = labels.numpy()
    (images,) = session.run(["images"], feeds)
    device = next(generator.parameters()).device
    with torch.no_grad():
        expected = generator(z.to(device), None if labels is None else labels.to(device)).cpu().numpy()
    return float(np.abs(images - expected).max())
