"""Training a classifier head (``kwstream train``): read a Speech Commands layout, encode it once
(cached), train a head, measure it, and only then write the head file and its confusion plot."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from kwstream.model.encoder import Encoder
from kwstream.errors import KwstreamError
from kwstream.keywords.base import default_layer
from kwstream.keywords.classifier.head import DEFAULT_THRESHOLD, ClassifierHead, HeadConfig, save_head, top_blocks
from kwstream.train.dataset import read_dataset
from kwstream.train.features import AugmentSettings, ExampleMaker, FeatureCache, default_cache_dir
from kwstream.train.fit import FitSettings, fit, predict
from kwstream.train.report import (ClassifierReport, background_false_alarms, confusion_matrix,
                                                 plot_confusion)


@dataclass(frozen=True)
class TrainSettings:
    data: Path
    out: Path
    layer: int | None = None
    """Layer the pooling head reads; None: the top one for a CTC fine-tuned model (most word-like),
    two thirds up for a pretrained-only one (its top layers serve the pretraining task)."""
    unfreeze: int = 0
    """Top encoder blocks trained with the head (0: features frozen)."""
    val_percent: float = 10.0
    val_speakers: tuple[str, ...] = ()
    cache: Path = field(default_factory=default_cache_dir)
    plot: Path | None = None
    """Confusion PNG; None: next to ``out`` as ``<out>.confusion.png``."""
    augment: AugmentSettings = AugmentSettings()
    fit: FitSettings = FitSettings()


def train(settings: TrainSettings, encoder: Encoder) -> ClassifierReport:
    """Train, report, and write the head and its plot; raises KwstreamError before writing anything
    when the data or the settings are wrong."""
    out = Path(settings.out)
    plot = Path(settings.plot) if settings.plot else out.with_name(out.name + ".confusion.png")
    for path in (out, plot):
        if not path.parent.is_dir():
            raise KwstreamError(f"cannot write {path}: folder {path.parent} does not exist")
    head, report = fit_head(settings, encoder)
    plot_confusion(report, plot, f"{encoder.name}, layer {head.config.layer}"
                   + (f", top {settings.unfreeze} blocks trained" if settings.unfreeze else ""))
    save_head(head, out)
    return report


def fit_head(settings: TrainSettings, encoder: Encoder) -> tuple[ClassifierHead, ClassifierReport]:
    """Read the layout, encode it (cached), train a head and measure it; writes nothing but the cache."""
    layer = default_layer(encoder, "classifier") if settings.layer is None else settings.layer
    encoder.check_layer(layer)
    if not 0 <= settings.unfreeze <= layer:
        raise KwstreamError(f"--unfreeze must be between 0 and the head's layer ({layer}), got {settings.unfreeze}")
    dataset = read_dataset(settings.data, settings.val_percent, settings.val_speakers)
    classes = dataset.classes
    maker = ExampleMaker(dataset, settings.augment)
    train_examples = maker.clips(dataset.train, settings.augment.copies)
    val_examples = maker.clips(dataset.validation, 0)
    per_class = len(train_examples) // (len(classes) - 1)
    train_examples += maker.silence(per_class, validation=False)
    val_examples += maker.silence(max(10, len(val_examples) // (len(classes) - 1)), validation=True)
    background = maker.background_windows()
    cache = FeatureCache(settings.cache, encoder, layer - settings.unfreeze, settings.augment)
    x_train = cache.features(train_examples, maker, "training clips")
    x_val = cache.features(val_examples, maker, "validation clips")
    x_background = cache.features(background, maker, "background")
    index = {c: i for i, c in enumerate(classes)}
    y_train = np.array([index[e.label] for e in train_examples])
    y_val = np.array([index[e.label] for e in val_examples])

    trained_on = (f"{Path(settings.data).name}: {len(dataset.train)} training clips, {len(dataset.validation)} validation "
                  f"clips ({', '.join(settings.val_speakers) or f'{settings.val_percent:g}% of speakers'})")
    config = HeadConfig(
        classes=classes, layer=layer, hidden_size=x_train.shape[-1], fingerprint=encoder.fingerprint, model_name=encoder.name,
        unfrozen_blocks=settings.unfreeze, clip_frames=x_train.shape[1],
        thresholds={k: DEFAULT_THRESHOLD for k in dataset.keywords}, trained_on=trained_on,
    )
    torch.manual_seed(settings.fit.seed)  # the head's initial weights, so a rerun trains the same head
    head = ClassifierHead(config, top_blocks(encoder, settings.unfreeze))
    result = fit(head, x_train, y_train, x_val, y_val, settings.fit)

    probs = predict(head, x_val)
    confusion = confusion_matrix(y_val, probs.argmax(1), len(classes)) if len(y_val) else np.zeros((len(classes),) * 2, int)
    keywords = config.keywords
    fired = background_false_alarms(predict(head, x_background)[:, :len(keywords)],
                                    [e.source_hash for e in background], keywords, config.thresholds,
                                    settings.augment.background_hop_s, settings.augment.clip_s)
    report = ClassifierReport(
        classes=classes, accuracy=float(np.mean(probs.argmax(1) == y_val)) if len(y_val) else float("nan"),
        confusion=confusion.tolist(), background_hours=maker.background_hours(), background_false_alarms=fired,
        best_epoch=result.best_epoch, train_clips=len(train_examples), val_clips=len(val_examples),
    )
    head.config = replace(config, trained_on=f"{trained_on}; validation accuracy {report.accuracy:.3f}")
    return head, report
