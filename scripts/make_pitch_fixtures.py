#!/usr/bin/env python3
"""Generates the pitch (pYIN) and STOI golden fixtures under Tests/Fixtures/pitch.

The Swift tests (Tests/ParawaveAudioTests/PYINTests.swift, STOITests.swift) read only the
files this script writes; they never run Python.
Requirements: numpy, scipy, librosa==0.11.0, pystoi==0.4.1, soundfile (soxr comes with
librosa); the real speech clips come from Debian packages:

    apt-get install -y codec2-examples pocketsphinx-testdata klettres-data
    pip install librosa==0.11.0 pystoi==0.4.1 soundfile
    python3 scripts/make_pitch_fixtures.py        # from the repository root

Outputs (all deterministic, fixed seeds):
- signal_NAME.npy: float32 mono audio at 16 kHz.
- pyin_NAME.npy: float32 (3, frames): librosa.pyin's f0 in Hz (NaN -> 0), voiced_flag
  (0/1) and voiced_prob, at sr 16000, frame_length 1024, hop_length 256, fmin 50, fmax 550
  (center=True, pad_mode="constant", every other argument at its default). pyin runs on the
  float64 copy of the float32 signal, so the reference is free of float32 rounding.
- stoi_NAME.npy: float32 degraded versions of signal_speech_librivox.npy at 16 kHz (noise
  at -5, 0 and 10 dB SNR, two low-passes); the pair "shift20ms" (the reference 320 samples
  late, zeros in front) is not stored: the test makes it exactly from the reference.
- stoi.json: per pair, "pystoi" is pystoi.stoi(reference, degraded, 16000) (non-extended,
  its own Octave-style polyphase resampler) and "soxr" is the same measure with both signals
  first resampled to 10 kHz by libsoxr at HQ (python-soxr), as the Swift port does.
"""
import json
import os

import librosa
import numpy as np
import pystoi
import scipy.signal
import soundfile as sf
import soxr

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "pitch")
SR = 16000
PYIN = dict(sr=SR, frame_length=1024, hop_length=256, fmin=50.0, fmax=550.0)


def path(name):
    os.makedirs(ROOT, exist_ok=True)
    return os.path.join(ROOT, name)


def synthetic_speech(seconds=1.2, seed=3):
    """Voiced syllables with gliding pitch (a rise 110 -> 230 Hz, a fall 260 -> 150 Hz with
    vibrato) through three formants, separated by a fricative noise burst and a pause."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    f0 = np.where(t < 0.55, 110 + 120 * (t / 0.55), 260 - 110 * (t - 0.55) / 0.65 + 8 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = np.zeros(n)
    for h in range(1, 60):
        fh = h * f0
        amp = np.zeros(n)
        for centre, width, gain in ((650, 120, 1.0), (1150, 150, 0.5), (2500, 250, 0.25)):
            amp += gain / (1 + ((fh - centre) / width) ** 2)
        voiced += amp * (fh < SR / 2) * np.sin(h * phase)
    gate = ((t > 0.08) & (t < 0.5)) | ((t > 0.7) & (t < 1.12))
    envelope = np.convolve(gate.astype(float), np.hanning(401) / np.hanning(401).sum(), mode="same")
    fricative = np.zeros(n)
    burst = (t > 0.55) & (t < 0.65)
    b, a = scipy.signal.butter(4, 3000 / (SR / 2), btype="high")
    fricative[burst] = scipy.signal.lfilter(b, a, rng.standard_normal(burst.sum())) * 0.3
    x = envelope * voiced / np.max(np.abs(voiced)) + fricative + 1e-3 * rng.standard_normal(n)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def load_clip(file, start, seconds, raw_rate=None):
    """`seconds` of a recording from `start`, mono, resampled to 16 kHz (soxr HQ), peak 0.5."""
    if raw_rate is not None:
        x = np.fromfile(file, dtype="<i2").astype(np.float64) / 32768.0
        rate = raw_rate
    else:
        x, rate = sf.read(file, dtype="float64", always_2d=True)
        x = x.mean(axis=1)
    x = x[int(start * rate):int((start + seconds) * rate)]
    if rate != SR:
        x = soxr.resample(x, rate, SR, quality="HQ")
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def signals():
    rng = np.random.default_rng(11)
    t = np.arange(int(0.4 * SR)) / SR
    return {
        "synthetic": synthetic_speech(),
        "tone": (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32),
        "silence": np.zeros(int(0.25 * SR), dtype=np.float32),
        "noise": (0.3 * rng.standard_normal(int(0.4 * SR))).astype(np.float32),
        # A male reader of an audiobook (16 kHz already).
        "speech_librivox": load_clip("/usr/share/pocketsphinx/test/data/librivox/"
                                     "sense_and_sensibility_01_austen_64kb-0870.wav", 0.3, 1.5),
        # codec2's female test sentence, 8 kHz raw 16-bit PCM.
        "speech_codec2": load_clip("/usr/share/codec2/raw/forig.raw", 0.0, 1.5, raw_rate=8000),
        # The letter O spoken in English, 44.1 kHz Ogg Vorbis.
        "speech_klettres": load_clip("/usr/share/klettres/en/alpha/O.ogg", 0.0, 1.2),
    }


def pyin_reference(x):
    f0, flag, prob = librosa.pyin(x.astype(np.float64), **PYIN)
    return np.stack([np.nan_to_num(f0, nan=0.0), flag.astype(np.float64), prob]).astype(np.float32)


def agreement(a, b):
    """Share of frames with the same voicing, and of frames voiced in both within 10 cents."""
    va, vb = a[1] > 0.5, b[1] > 0.5
    both = va & vb
    cents = 1200 * np.abs(np.log2(np.where(both, a[0], 1) / np.where(both, b[0], 1)))
    return np.mean(va == vb), (np.mean(cents[both] <= 10) if both.any() else 1.0)


def stoi_pairs(reference):
    rng = np.random.default_rng(5)
    power = np.mean(reference.astype(np.float64) ** 2)
    pairs = {}
    for snr in (-5, 0, 10):
        noise = rng.standard_normal(len(reference)) * np.sqrt(power / 10 ** (snr / 10))
        pairs[f"noise_snr{snr:+d}".replace("+", "p").replace("-", "m")] = reference + noise
    # A gentle low-pass (4th order at 2 kHz, causal) keeps some signal in every band.
    b, a = scipy.signal.butter(4, 2000 / (SR / 2))
    pairs["lowpass2k"] = scipy.signal.lfilter(b, a, reference)
    # A steep one (8th order at 1 kHz, forwards and backwards) leaves the bands above about
    # 2 kHz with nothing but rounding noise, where the two resamplers' differences show.
    sos = scipy.signal.butter(8, 1000 / (SR / 2), output="sos")
    pairs["lowpass1k"] = scipy.signal.sosfiltfilt(sos, reference)
    pairs = {name: np.clip(y, -1, 1).astype(np.float32) for name, y in pairs.items()}
    # 20 ms late; not stored: the test makes it from the reference, exactly.
    shift = int(0.02 * SR)
    pairs["shift20ms"] = np.concatenate([np.zeros(shift, dtype=np.float32), reference[:-shift]])
    return pairs


def stoi_soxr(x, y):
    """pystoi's measure with both signals resampled to 10 kHz by libsoxr (HQ) instead."""
    x10 = soxr.resample(x, SR, 10000, quality="HQ")
    y10 = soxr.resample(y, SR, 10000, quality="HQ")
    return pystoi.stoi(x10.astype(np.float64), y10.astype(np.float64), 10000)


def main():
    sigs = signals()
    for name, x in sigs.items():
        np.save(path(f"signal_{name}.npy"), x)
        ref = pyin_reference(x)
        np.save(path(f"pyin_{name}.npy"), ref)
        # How far librosa itself moves when fed the float32 signal (its float32 arithmetic).
        f0, flag, prob = librosa.pyin(x, **PYIN)
        f32 = np.stack([np.nan_to_num(f0, nan=0.0), flag, prob])
        v, c = agreement(ref, f32)
        print(f"{name}: {len(x)} samples, {ref.shape[1]} frames, {int(ref[1].sum())} voiced; "
              f"float32-input librosa agrees on voicing {100 * v:.1f}%, within 10 cents {100 * c:.1f}%")

    reference = sigs["speech_librivox"]
    results = {}
    for name, y in stoi_pairs(reference).items():
        if name != "shift20ms":
            np.save(path(f"stoi_{name}.npy"), y)
        x64, y64 = reference.astype(np.float64), y.astype(np.float64)
        value = float(pystoi.stoi(x64, y64, SR))
        with_soxr = float(stoi_soxr(reference, y))
        results[name] = {"pystoi": value, "soxr": with_soxr}
        print(f"stoi {name}: pystoi {value:.6f}, with soxr resampling {with_soxr:.6f} "
              f"(difference {with_soxr - value:+.6f})")
    with open(path("stoi.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(ROOT, f)) for f in os.listdir(ROOT))
    print(f"{len(os.listdir(ROOT))} files, {total / 1024:.0f} KiB in {os.path.normpath(ROOT)}")


if __name__ == "__main__":
    main()
