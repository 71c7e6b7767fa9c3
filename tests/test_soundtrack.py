"""--audio: LTX-2 made to a given soundtrack (Lightricks' a2vid_two_stage.py): the sound read with
ffmpeg, turned into ltx-core's log-mel spectrogram, encoded by the audio VAE and held fixed in every
pass of both stages; the video carries the original sound. Tiny LTX-2 through the local Hub."""

import json
import wave

import numpy as np
import pytest

from conftest import gv, make_image, probe
from test_hub import hub, hub_root  # noqa: F401 (fixtures)
from test_ltx2 import audio_streams

# ltx-core model/audio_vae/ops.py AudioProcessor (torchaudio MelSpectrogram arguments)
MEL = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 160, "mel_scale": "slaney", "norm": "slaney", "power": 1.0}


def tone(path, seconds=0.7, rate=44100, hz=440.0):
    """A stereo 16-bit WAV: a tone on the left, a quieter fifth on the right."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = np.stack([0.5 * np.sin(2 * np.pi * hz * t), 0.25 * np.sin(2 * np.pi * hz * 1.5 * t)], 1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((pcm * 32767).astype("<i2").tobytes())
    return path


def test_the_mel_filters_are_slaneys_and_a_tone_lights_its_own_bin():
    assert (gv.SOUNDTRACK_RATE, gv.MEL_FFT, gv.MEL_HOP) == (MEL["sample_rate"], MEL["n_fft"], MEL["hop_length"])
    filters = gv.slaney_mel_filters(16000, 1024, 64)
    assert filters.shape == (64, 513) and (filters >= 0).all()
    freqs = np.linspace(0, 8000, 513)
    centres = freqs[filters.argmax(1)]
    assert (np.diff(centres) >= 0).all() and centres[-1] > 6000
    # Slaney's mel scale (librosa's htk=False, torchaudio's mel_scale="slaney"): 3 mels per 200 Hz up to
    # 1 kHz (mel 15), then 27 mels per factor 6.4; 66 points from 0 Hz to 8 kHz, filters on the inner 64
    top = 15 + 27 * np.log(8000 / 1000) / np.log(6.4)
    mels = np.linspace(0, top, 66)[1:-1]
    want = np.where(mels < 15, mels * 200 / 3, 1000 * np.exp(np.log(6.4) / 27 * (mels - 15)))
    assert np.abs(centres - want).max() <= 8000 / 512  # each peak within one FFT bin of its centre
    # norm="slaney": each triangle scaled by 2 / (its width in Hz), so its area in Hz is 1
    edges = np.concatenate([[0], want, [8000]])
    assert (filters.max(1) <= 2 / (edges[2:] - edges[:-2]) + 1e-9).all()
    t = np.arange(16000) / 16000
    wave_ = np.stack([np.sin(2 * np.pi * 1000 * t)] * 2).astype(np.float32)
    import torch

    mel = gv.log_mel(torch.from_numpy(wave_), 64)
    assert mel.shape == (1, 2, 16000 // 160 + 1, 64)
    loudest = int(mel[0, 0, 50].argmax())
    assert abs(centres[loudest] - 1000) < 80  # the filter centred on 1 kHz answers a 1 kHz tone


def test_ltx2_is_made_to_the_soundtrack_which_stays_fixed_and_is_the_videos_sound(hub, tmp_path, capsys,
                                                                                   monkeypatch):
    from diffusers import LTX2VideoTransformer3DModel

    seen = []
    real = LTX2VideoTransformer3DModel.forward

    def forward(self, hidden_states, *args, **kwargs):
        seen.append((float(kwargs["audio_timestep"].abs().max()), kwargs["audio_hidden_states"].detach().clone()))
        return real(self, hidden_states, *args, **kwargs)

    monkeypatch.setattr(LTX2VideoTransformer3DModel, "forward", forward)
    sound = tone(tmp_path / "tone.wav")
    out = tmp_path / "v.mp4"
    rc = gv.main(["--image", str(make_image(tmp_path / "in.png", 160, 96)), "--prompt", "a bell rings", "--model",
                  "ltx2", "--preset", "fast", "--width", "192", "--height", "128", "--audio", str(sound), "-o", str(out),
                  "--seed", "5", "--memory-budget", "200"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    side = json.loads(out.with_suffix(".json").read_text())
    # 0.7 s at 24 fps: 17.8 frames asked, LTX-2's 8k+1 rule makes 25 (said in a note)
    assert side["num_frames"] == len(probe(out)["frames"]) == 25 and side["soundtrack"]["seconds"] == 0.7
    assert "--audio" in side["command"] and side["soundtrack"]["sha256"] == gv.file_sha256(sound)
    assert len(seen) == 8 + 3 and all(t == 0.0 for t, _ in seen)  # every pass sees the sound at timestep 0
    stage1 = [a for _, a in seen[:8]]
    assert all(bool((a == stage1[0]).all()) for a in stage1)  # and no step changes it
    streams, pcm = audio_streams(out)
    assert any("Audio: aac" in s and "48000 Hz" in s for s in streams), streams
    given = gv.read_audio(sound, 48000)  # the video's sound is the file's: compare where both have sound
    n = min(len(pcm), given.shape[1]) - 2048
    ours = pcm[1024:n, 0] / 32768.0
    corr = np.corrcoef(ours, given[0, 1024:n])[0, 1]
    assert corr > 0.95, corr


@pytest.mark.parametrize("extra, message", [
    (["--model", "ltx-distilled", "--audio", "SOUND"], "--audio: ltx-distilled makes silent video"),
    (["--model", "ltx2", "--audio", "SOUND", "--no-audio"], "--audio with --no-audio"),
    (["--model", "ltx2", "--audio", "missing.wav"], "--audio missing.wav: no such file"),
    (["--model", "ltx2", "--audio", "IMAGE"], "no sound in it that ffmpeg can read"),
])
def test_a_soundtrack_the_run_cannot_use_is_refused_before_loading(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    image = make_image(tmp_path / "in.png", 160, 96)
    sound = tone(tmp_path / "tone.wav")
    extra = [str(sound) if e == "SOUND" else str(image) if e == "IMAGE" else e for e in extra]
    rc = gv.main(["--image", str(image), "--prompt", "p", "-o", str(tmp_path / "v.mp4"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "v.mp4").exists()
