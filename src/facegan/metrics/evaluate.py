"""``facegan evaluate``: a generator's samples against a prepared real set, in Inception space.

Reference features of a real cache (and of its photos sharing one label set) are
computed once per (cache content, N, seed, Inception file, label set) and kept beside
the cache (or under $FACEGAN_CACHE when the cache folder is read-only).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facegan import files, models, sample
from facegan.conditions import Conditions
from facegan.config import EvalConfig
from facegan.data.cache import Cache, cache_root, open_cache
from facegan.errors import FaceganError
from facegan.metrics import distances, registry
from facegan.metrics.attributes import AttributeClassifier
from facegan.metrics.inception import FEATURES, Inception

Progress = Callable[[int, int], None]
Phase = Callable[[str], None]


def _reference_places(cache: Cache, n: int, seed: int, inception: Inception, photos: str = "") -> list[Path]:
    """Where the features of ``n`` photos of ``cache`` are kept; ``photos`` names a part
    of it (e.g. those with one label set), empty for the whole cache."""
    key = hashlib.sha256(
        f"{cache.manifest['fingerprint']}|{cache.manifest['settings']}|{n}|{seed}|{inception.fingerprint}"
        f"{'|' + photos if photos else ''}".encode()
    ).hexdigest()[:16]
    name = f"inception-{n}-{key}.npy"
    return [cache.folder / name, cache_root() / "reference" / name]


def subset(count: int, n: int, seed: int) -> np.ndarray:
    """The sorted indices of the seeded random ``n`` of ``count`` real images a comparison uses."""
    return np.sort(np.random.default_rng(seed).choice(count, n, replace=False))


def other_subset(count: int, taken: np.ndarray, seed: int) -> np.ndarray | None:
    """As many other images as ``taken`` holds, none of them in it (None if too few)."""
    rest = np.setdiff1d(np.arange(count), taken)
    if len(rest) < len(taken):
        return None
    return np.sort(np.random.default_rng([seed, 1]).choice(rest, len(taken), replace=False))


def reference_features(images: np.ndarray, n: int, inception: Inception, seed: int, places: list[Path],
                       progress: Progress | None = None) -> tuple[np.ndarray, bool]:
    """Features of a seeded random subset of ``n`` of ``images``, read from the first of
    ``places`` that holds them, else computed and written to the first writable one;
    returns (features, came from disk). A kept file that is truncated, of another shape or
    not finite is computed again and replaced."""
    for place in places:
        if place.is_file():
            try:
                kept = np.load(place)
            except (OSError, ValueError, EOFError):
                continue
            if kept.shape == (n, FEATURES) and kept.dtype.kind == "f" and np.isfinite(kept).all():
                return kept, True
    features = inception.features(images[subset(len(images), n, seed)], progress=progress)
    for place in places:
        try:
            place.parent.mkdir(parents=True, exist_ok=True)
            files.atomic_write(place, lambda f: np.save(f, features))
            break
        except (OSError, FaceganError):
            continue
    return features, False


def compare(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    """Every registered figure of two Inception feature sets."""
    return registry.evaluate(registry.Evidence(real, fake, np.empty((0, 1, 1, 3), np.uint8)), ("inception",))


def samples_of(generator: torch.nn.Module, n: int, seed: int, device: torch.device,
               labels: np.ndarray | None = None) -> np.ndarray:
    """``n`` samples in inference mode (batch norm on running statistics), latent seed
    ``seed``, with ``labels`` for a conditional generator."""
    with models.evaluating(generator):
        return sample.generate(generator, n, seed, device, labels=labels)


def judge(fakes: np.ndarray, real_features: np.ndarray, inception: Inception,
          progress: Progress | None = None, phase: Phase | None = None) -> dict[str, float]:
    """Every registered figure of the samples ``fakes`` against the real features."""
    phase = phase or (lambda name: None)
    phase(f"samples through Inception ({len(fakes):,})")
    evidence = registry.Evidence(real_features, inception.features(fakes, progress=progress), fakes)
    phase("distances: " + ", ".join(f.label for f in registry.FIGURES.values() if f.needs == "inception"))
    figures = registry.evaluate(evidence, ("inception",))
    phase(f"face detection ({len(fakes):,} samples)")
    return {**figures, **registry.evaluate(evidence, ("samples",))}


class DuringTraining:
    """The evaluation the trainer runs every few epochs: ``n`` samples against ``n`` of the
    training images, whose features are computed at the first call and kept in ``folder``
    (the run directory) under a name keyed by their content and the Inception file. With
    ``settings.classifier`` it also tracks each attribute's share among the samples
    (``rate_<name>``), among the real images compared as the classifier reads them
    (``real_rate_<name>``), and the distance in the classifier's features
    (``classifier_fd``)."""

    def __init__(self, settings: EvalConfig, images: np.ndarray, folder: Path, seed: int, device: torch.device,
                 conditions: Conditions | None = None):
        if settings.eval_n > len(images):
            raise FaceganError(f"eval.eval_n is {settings.eval_n:,} but the data set has only {len(images):,} images")
        self.inception = Inception(settings.inception or None, device)  # a missing file fails before training
        self.images, self.n, self.seed, self.device = images, settings.eval_n, seed, device
        self.folder = folder
        self.real_features: np.ndarray | None = None
        # a conditional generator is asked for labels drawn as the training data has them
        self.labels = None if conditions is None else conditions.sample(self.n, seed + 1)
        self.reader = AttributeClassifier(settings.classifier) if settings.classifier else None
        self.real_read: tuple[np.ndarray, np.ndarray] | None = None

    def _place(self) -> Path:
        digest = hashlib.sha256(np.ascontiguousarray(self.images[subset(len(self.images), self.n, self.seed)]).tobytes())
        digest.update(self.inception.fingerprint.encode())
        return self.folder / f"eval-reference-{self.n}-{digest.hexdigest()[:16]}.npy"

    def __call__(self, generator: torch.nn.Module, progress: Progress | None = None) -> dict[str, float]:
        if self.real_features is None:
            self.real_features, _ = reference_features(self.images, self.n, self.inception, self.seed, [self._place()],
                                                       progress)
        fakes = samples_of(generator, self.n, self.seed + 1, self.device, self.labels)
        figures = judge(fakes, self.real_features, self.inception, progress)
        if self.reader is not None:
            if self.real_read is None:
                self.real_read = self.reader.read_and_embed(self.images[subset(len(self.images), self.n, self.seed)])
            read, embedded = self.reader.read_and_embed(fakes)
            figures["classifier_fd"] = distances.fid(self.real_read[1], embedded)
            for j, name in enumerate(self.reader.names):
                figures[f"rate_{name}"] = float(read[:, j].mean())
                figures[f"real_rate_{name}"] = float(self.real_read[0][:, j].mean())
        return figures


def conditional_accuracy(generator: torch.nn.Module, conditions: Conditions, readers: list[AttributeClassifier],
                         asked: np.ndarray, reads: list[np.ndarray], seed: int, device: torch.device,
                         agreements: list[dict[str, float]]) -> list[dict[str, dict[str, float]]]:
    """For each reader, and each attribute the model is conditioned on that it reads, the
    share of samples in which it reads the value the generator was asked for:

    - ``accuracy``: over samples asked for the labels ``asked`` (drawn as the training
      images have them), whose decisions by that reader are ``reads[i]``;
    - ``asked_1`` / ``asked_0``: as many new samples, each asked for the attribute
      (or its absence), the other attributes drawn as the training images with that
      value have them (made once, read by every reader). A generator that ignored a rare
      attribute would still score a high ``accuracy``; ``asked_1`` shows it.
      ``balanced`` is their mean;
    - ``real_agreement``: how often the reader agrees with the labels of real images
      (``agreements[i]``), the most a perfect generator could score.
    """
    n = len(asked)
    results: list[dict[str, dict[str, float]]] = [{} for _ in readers]
    for j, name in enumerate(conditions.names):
        knowing = [i for i, reader in enumerate(readers) if name in reader.names]
        if not knowing:
            continue
        for i in knowing:
            k = readers[i].names.index(name)
            results[i][name] = {"accuracy": float((reads[i][:, k] == asked[:, j]).mean())}
        for value in (1, 0):
            labels = conditions.sample(n, seed + 2 + value, {name: value})
            made = samples_of(generator, n, seed + 2 + value, device, labels)
            for i in knowing:
                decisions = readers[i].read(made)[:, readers[i].names.index(name)]
                results[i][name][f"asked_{value}"] = float((decisions == value).mean())
        for i in knowing:
            figures = results[i][name]
            figures["balanced"] = (figures["asked_1"] + figures["asked_0"]) / 2
            figures["real_agreement"] = agreements[i][name]
    return results


def attribute_figures(names: list[str], fake_read: np.ndarray, real_read: np.ndarray, labels: np.ndarray,
                      real_index: np.ndarray) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """One reader's figures per attribute: its rate among the samples, among the real
    images compared (``real_index`` of the cache) as the reader reads them, and in the
    whole cache's ``labels``; and how often the reader agrees with those images' labels."""
    rates = {name: {"samples": float(fake_read[:, j].mean()), "real_classified": float(real_read[:, j].mean()),
                    "real_labels": float(labels[:, j].mean())} for j, name in enumerate(names)}
    agreement = {name: float((real_read[:, j] == labels[real_index, j]).mean()) for j, name in enumerate(names)}
    return rates, agreement


LABEL_SETS = 4  # the most common label combinations whose samples' diversity evaluate measures


def label_diversity(generator: torch.nn.Module, conditions: Conditions, inception: Inception,
                    real_features: np.ndarray, n: int, seed: int, device: torch.device,
                    sets: int = LABEL_SETS, progress: Progress | None = None,
                    photos: tuple[np.ndarray, np.ndarray] | None = None,
                    places: Callable[[dict[str, int]], list[Path]] | None = None) -> list[dict[str, Any]]:
    """``evaluate``'s diversity of ``n`` samples that all share one label set, for each of
    the ``sets`` combinations most common in the training data: the median distance from
    each sample to its nearest other, over the same among ``n`` real images of every kind
    (so a model whose faces differ within a label set as much as photos differ at all
    scores 1; photos sharing a label set are themselves a little less varied). A model
    that draws one face per label scores near 0 here while its overall diversity, over
    samples of many labels, can look fine.

    With ``photos`` (the reference images and their 0/1 labels in ``conditions.names``
    order), each row also gives ``real_diversity``: the same measure for ``n`` photos
    sharing that label set (where the reference has that many), the ceiling a model that
    draws such faces as varied as the photos reaches; ``places(label set)`` says where
    their features are kept between evaluations (``reference_features``)."""
    real = real_features[subset(len(real_features), n, seed)]
    photo_images, photo_labels = photos if photos is not None else (None, None)
    rows = []
    for r in np.argsort(-conditions.counts, kind="stable")[:sets]:
        wanted = {name: int(v) for name, v in zip(conditions.names, conditions.rows[r])}
        labels = np.repeat(conditions.rows[r][None].astype(np.float32), n, axis=0)
        features = inception.features(samples_of(generator, n, seed + 7 + len(rows), device, labels), progress=progress)
        row = {"labels": wanted, "share": float(conditions.counts[r] / conditions.counts.sum()),
               "diversity": distances.diversity(real, features)}
        if photo_labels is not None:
            sharing = np.flatnonzero((photo_labels == conditions.rows[r][None]).all(axis=1))
            if len(sharing) >= n:
                features, _ = reference_features(photo_images[sharing], n, inception, seed,
                                                 places(wanted) if places else [], progress)
                row["real_diversity"] = distances.diversity(real, features)
        rows.append(row)
    return rows


def evaluate(checkpoint: str | Path, real: str | Path, n: int, inception_path: str | Path | None = None,
             seed: int = 0, device: torch.device = torch.device("cpu"),
             progress: Progress | None = None, classifier: str | Path | None = None,
             phase: Phase | None = None, readers: tuple[str | Path, ...] = (),
             label_n: int = 0) -> dict[str, Any]:
    """FID, KID, precision, recall, diversity, memorisation and face rate of ``n`` samples
    of a checkpoint against ``n`` real images; with an attribute classifier, the rate of
    each attribute among the samples, among the real images as it reads them, and in the
    cache's labels; for a conditional model also its conditional accuracy (see
    ``conditional_accuracy``), by the classifier and by each of ``readers`` (other
    classifiers, e.g. an independent one trained on photos the generator never saw), and,
    with ``label_n``, the diversity of ``label_n`` samples within each of its most common
    label sets (``label_diversity``). A conditional model's samples for FID are asked for
    labels drawn as its training images have them. ``phase(name)`` is told as each part begins;
    ``progress(done, total)`` counts images through the networks."""
    phase = phase or (lambda name: None)
    if n < 2:
        raise FaceganError(f"--n must be at least 2, not {n}")
    cache = open_cache(real)
    generator, config, conditions = sample.load_generator(checkpoint, device)
    size = config.model.resolution
    if cache.size != size:
        raise FaceganError(
            f"{real} holds {cache.size}x{cache.size} images but the model makes {size}x{size}; compare at equal size: "
            f"facegan prepare {cache.manifest['source']} --out DIR --size {size}"
        )
    if n > len(cache.images):
        raise FaceganError(f"--n {n} is more than the {len(cache.images):,} images of {cache.folder}")
    if readers and not classifier:
        raise FaceganError("other readers are read beside the classifier: give --classifier too")
    if label_n and conditions is None:
        raise FaceganError("diversity within a label set needs a conditional model")
    if label_n and not 2 <= label_n <= n:
        raise FaceganError(f"the samples per label set must be 2 to --n ({n:,}), not {label_n:,}")
    reader = AttributeClassifier(classifier) if classifier else None
    more_readers = [AttributeClassifier(path) for path in readers]
    # each reader's label columns; refuses a cache without those attributes, before the slow part
    columns = [cache.attribute_columns(tuple(r.names)) for r in ([reader] if reader else []) + more_readers]
    inception = Inception(inception_path, device)
    started = time.perf_counter()
    phase(f"real images through Inception ({n:,} of {cache.folder}, or their features kept from an earlier run)")
    real_features, reused = reference_features(cache.images, n, inception, seed,
                                               _reference_places(cache, n, seed, inception), progress)
    asked = None if conditions is None else conditions.sample(n, seed + 1)  # as the training images have them
    phase(f"generating {n:,} samples")
    fakes = samples_of(generator, n, seed + 1, device, asked)
    figures = judge(fakes, real_features, inception, progress, phase)
    seconds = time.perf_counter() - started
    if conditions is not None:
        figures["conditioned_on"] = list(conditions.names)
    if reader is not None:
        phase(f"attribute classifier ({n:,} samples, {n:,} real images, and {n:,} other real ones for the floor)")
        fake_read, fake_embedded = reader.read_and_embed(fakes)
        real_index = subset(len(cache.images), n, seed)
        real_read, real_embedded = reader.read_and_embed(cache.images[real_index])
        figures["classifier"] = str(reader.path)
        figures["classifier_fd"] = distances.fid(real_embedded, fake_embedded)
        others = other_subset(len(cache.images), real_index, seed)
        if others is not None:  # the same distance between two sets of real photos: what a perfect model scores
            figures["classifier_fd_floor"] = distances.fid(real_embedded, reader.read_and_embed(cache.images[others])[1])
        figures["attributes"], agreement = attribute_figures(reader.names, fake_read, real_read, columns[0], real_index)
        other_reads = [other.read(fakes) for other in more_readers]
        other_agreements = []
        for other, read, other_labels in zip(more_readers, other_reads, columns[1:]):
            rates, other_agreement = attribute_figures(other.names, read, other.read(cache.images[real_index]),
                                                       other_labels, real_index)
            other_agreements.append(other_agreement)
            figures.setdefault("readers", {})[str(other.path)] = {
                "architecture": other.architecture, "train_split": other.train_split,
                "test_balanced_accuracy": other.test_balanced_accuracy, "attributes": rates}
        if conditions is not None:
            phase(f"conditional accuracy ({2 * n:,} more samples per attribute)")
            found = conditional_accuracy(generator, conditions, [reader, *more_readers], asked, [fake_read, *other_reads],
                                         seed, device, [agreement, *other_agreements])
            figures["conditional"] = found[0]
            for other, accuracy in zip(more_readers, found[1:]):
                figures["readers"][str(other.path)]["conditional"] = accuracy
    if label_n:
        phase(f"diversity within label sets ({LABEL_SETS} sets of {label_n:,} samples, and as many photos of "
              "each set, through Inception)")
        photos = None
        if "attributes" in cache.labels:  # photos sharing each label set give its ceiling
            photos = (cache.images, cache.attribute_columns(tuple(conditions.names)).astype(np.uint8))

        def places(wanted: dict[str, int]) -> list[Path]:
            return _reference_places(cache, label_n, seed, inception, ",".join(f"{k}={v}" for k, v in wanted.items()))

        figures["label_diversity"] = label_diversity(generator, conditions, inception, real_features, label_n, seed,
                                                     device, progress=progress, photos=photos, places=places)
    extracted = n * (1 if reused else 2)
    return {
        "checkpoint": str(checkpoint),
        "reference": str(cache.folder),
        "reference_images": len(cache.images),
        "n": n,
        "resolution": size,
        "inception": str(inception.path),
        **figures,
        "reference_features_cached": reused,
        "seconds": round(seconds, 2),
        "inception_images_per_s": round(extracted / seconds, 2),
    }
