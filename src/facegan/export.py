"""``facegan export``: a trained generator on its own, for other programs.

Two formats: a generator file (safetensors weights with the settings that rebuild them,
``facegan.generator_file``), which facegan and anything reading safetensors can load;
and ONNX, the network itself, which runs without Python or PyTorch (onnxruntime,
browsers, phones). A generator's ONNX graph takes ``z`` (N, z_dim) float32, and
``labels`` (N, attributes) 0/1 float32 for a conditional model; an upscaler's takes
``low_res`` (N, 3, h, w) float32 of any size up to 1024; both for any N, and return
``images`` (N, 3, H, W) in the network's output range, recorded in the file's metadata.
A translator's takes ``faces`` (N, 3, S, S) in that range and returns both directions,
``to_b`` (A -> B) and ``to_a`` (B -> A), each (N, 3, S, S).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facegan import files, models, sample
from facegan import images as imaging
from facegan import config as cfg
from facegan.conditions import Conditions
from facegan.errors import FaceganError

ONNX_TOLERANCE = 1e-4  # largest difference from PyTorch's pixels, in the output range (about 0.01 of a uint8 level)
CHECK_SAMPLES = 16


def check_inputs(generator: torch.nn.Module, config: cfg.Config, conditions: Conditions | None, n: int,
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """What the network takes, ``n`` of each, by the names its ONNX graph gives them, the
    same for a seed: a generator's latents ``z`` (and ``labels``); an upscaler's ``low_res``
    images at its input size (smooth random colours: any picture is an input)."""
    kind = models.family_of(config.model).kind
    if kind in ("upscaler", "translator"):
        side = config.model.resolution // (config.model.family_settings.scale if kind == "upscaler" else 1)
        coarse = torch.rand(n, 3, max(side // 4, 1), max(side // 4, 1), generator=torch.Generator().manual_seed(seed))
        pictures = F.interpolate(coarse * 2 - 1, size=(side, side), mode="bilinear", align_corners=False)
        return {"low_res" if kind == "upscaler" else "faces": pictures}
    feeds = {"z": sample.latents(n, generator.z_dim, seed)}
    if conditions is not None:
        feeds["labels"] = torch.as_tensor(conditions.sample(n, seed), dtype=torch.float32)
    return feeds


class BothWays(torch.nn.Module):
    """A translator as its ONNX graph runs it: faces -> (A -> B, B -> A)."""

    def __init__(self, translator: torch.nn.Module):
        super().__init__()
        self.translator = translator
        self.output_range = translator.output_range

    def forward(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.translator.to_b(faces), self.translator.to_a(faces)


def exported(network: torch.nn.Module, config: cfg.Config) -> tuple[torch.nn.Module, list[str]]:
    """The module an ONNX file holds for ``network`` and the names of its outputs."""
    if models.family_of(config.model).kind == "translator":
        return BothWays(network), ["to_b", "to_a"]
    return network, ["images"]


def _images(generator: torch.nn.Module, feeds: dict[str, torch.Tensor]) -> np.ndarray:
    """uint8 images of the network for ``feeds`` (a translator: its A -> B direction)."""
    device = next(generator.parameters()).device
    with models.evaluating(generator), torch.no_grad():
        return imaging.to_uint8(generator(*(v.to(device) for v in feeds.values())), generator.output_range)


def half_precision_error(generator: torch.nn.Module, config: cfg.Config, conditions: Conditions | None, n: int = 64,
                         seed: int = 0) -> dict[str, float]:
    """How far the network's uint8 images move when its weights are rounded to fp16
    (and used as fp32 again), over ``n`` images: the largest and the mean change in
    levels, and the share of pixels that change at all."""
    rounded = {k: v.half().float() if v.is_floating_point() else v for k, v in generator.state_dict().items()}
    feeds = check_inputs(generator, config, conditions, n, seed)
    exact = _images(generator, feeds).astype(np.int16)
    original = {k: v.clone() for k, v in generator.state_dict().items()}
    try:
        generator.load_state_dict(rounded)
        approx = _images(generator, feeds).astype(np.int16)
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
    generator, outputs = exported(generator.to("cpu").eval(), config)
    batch = torch.export.Dim("n", min=1, max=4096)
    feeds = check_inputs(generator, config, conditions, 2)
    names, args = list(feeds), tuple(feeds.values())
    if "low_res" in feeds:  # an upscaler takes pictures of any size
        shapes: tuple[dict[int, Any], ...] = ({0: batch, 2: torch.export.Dim("height", min=8, max=1024),
                                               3: torch.export.Dim("width", min=8, max=1024)},)
    else:
        shapes = tuple({0: batch} for _ in args)
    chatter = logging.getLogger("torch.onnx")  # "torchvision is not installed", which nothing here needs
    level = chatter.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes about its own internals
        chatter.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(generator, args, input_names=names, output_names=outputs,
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


def onnx_difference(path: str | Path, generator: torch.nn.Module, config: cfg.Config, conditions: Conditions | None,
                    n: int = CHECK_SAMPLES, seed: int = 0) -> float:
    """The largest difference between the ONNX file's images (run by onnxruntime) and
    PyTorch's, for the same ``n`` inputs (``check_inputs``)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = check_inputs(generator, config, conditions, n, seed)
    network, outputs = exported(generator, config)
    made = session.run(outputs, {k: v.numpy() for k, v in feeds.items()})
    device = next(generator.parameters()).device
    with models.evaluating(network):
        expected = network(*(v.to(device) for v in feeds.values()))
    expected = expected if isinstance(expected, tuple) else (expected,)
    return max(float(np.abs(a - b.cpu().numpy()).max()) for a, b in zip(made, expected))
