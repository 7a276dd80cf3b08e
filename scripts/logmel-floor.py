#!/usr/bin/env python3
"""The log-mel distance of noise with the recording's own spectrum.

For each utterance of an `evaluate --report` folder, keeps the real recording's STFT
magnitude (n_fft 1024, hop 256), draws uniform random phases, inverts it, and scores the
result against the recording with evaluate's log-mel distance (magnitude Slaney mel, 80
bands to 8 kHz, 20 log10 with floor 1e-5, RMS over every band and frame). This is what a
vocoder that gets every magnitude right but drives it with noise would score.

    python3 scripts/logmel-floor.py REPORT_DIR [--seed 0]
Needs numpy, librosa and soundfile (pip).
"""
import argparse, glob, os
import numpy as np, librosa, soundfile

parser = argparse.ArgumentParser()
parser.add_argument("report")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
mel_basis = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80, fmin=0, fmax=8000, norm="slaney", htk=False)
rng = np.random.default_rng(args.seed)

def log_mel(x):
    return 20 * np.log10(np.maximum(mel_basis @ np.abs(librosa.stft(x, n_fft=1024, hop_length=256, center=True)), 1e-5))

squared, count = 0.0, 0
for real_path in sorted(glob.glob(os.path.join(args.report, "*", "real.wav"))):
    real, rate = soundfile.read(real_path, dtype="float32")
    assert rate == 16000, real_path
    spectrum = librosa.stft(real, n_fft=1024, hop_length=256, center=True)
    noisy = librosa.istft(np.abs(spectrum) * np.exp(2j * np.pi * rng.random(spectrum.shape)), hop_length=256, length=len(real))
    d = log_mel(real) - log_mel(noisy)
    squared += float((d ** 2).sum())
    count += d.size
print(f"random-phase log-mel distance over {count // 80} frames: {np.sqrt(squared / count):.2f} dB")
