#!/usr/bin/env python3
"""Generates the golden fixtures under Tests/Fixtures from independent references.

The Swift tests read only the files this script writes; they never run Python.
Requirements: numpy, librosa==0.11.0, soundfile, torch (CPU is enough).
Run from the repository root:

    python3 scripts/make_fixtures.py                    # every fixture
    python3 scripts/make_fixtures.py transposed_conv    # only the named generators

Every output is deterministic (fixed seeds), so re-running it reproduces the
committed files, except that libsndfile's OGG and float-WAV writers embed a stream
serial number and a timestamp, and Python's safetensors orders metadata as its hash
map does: those files differ byte-wise between runs while their content does not.
"""
import json
import warnings
import os

import librosa
import numpy as np
import soundfile as sf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures")


def out(*parts):
    path = os.path.join(ROOT, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


# ---------------------------------------------------------------- mel parity

def speech_like(sr, seconds, seed):
    """A voiced source with a gliding pitch through three formant resonances, plus
    noise bursts (fricatives) and a syllable-rate envelope."""
    rng = np.random.RandomState(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 140 + 50 * np.sin(2 * np.pi * 1.7 * t) + 20 * np.sin(2 * np.pi * 5.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = np.zeros_like(t)
    for h in range(1, 40):
        fh = h * f0
        amp = np.zeros_like(t)
        for centre, width, gain in ((700, 130, 1.0), (1200, 160, 0.6), (2600, 250, 0.3)):
            amp += gain / (1 + ((fh - centre) / width) ** 2)
        amp *= fh < sr / 2
        voiced += amp * np.sin(h * phase)
    noise = rng.randn(len(t)) * (np.sin(2 * np.pi * 2.3 * t) > 0.6)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.1 * t) ** 2
    x = env * voiced + 0.05 * noise
    return (0.6 * x / np.max(np.abs(x))).astype(np.float32)


def signals():
    rng = np.random.RandomState(7)
    return {
        "speech": speech_like(16000, 1.3, 1),
        "silence": np.zeros(8000, dtype=np.float32),
        "noise": rng.uniform(-1, 1, 12345).astype(np.float32),
        "short": (0.5 * np.sin(2 * np.pi * 440 * np.arange(700) / 16000)).astype(np.float32),
        "tiny": rng.uniform(-0.3, 0.3, 37).astype(np.float32),
    }


PARAMS = {
    "sr16k": dict(sr=16000, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0, fmax=8000.0, htk=False),
    "sr22k": dict(sr=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0, fmax=8000.0, htk=False),
    "htk": dict(sr=16000, n_fft=512, hop_length=128, win_length=400, n_mels=40, fmin=20.0, fmax=7600.0, htk=True),
}


def mel_fixtures():
    sigs = signals()
    for name, x in sigs.items():
        np.save(out("mel", f"signal_{name}.npy"), x)
    for pname, p in PARAMS.items():
        basis = librosa.filters.mel(sr=p["sr"], n_fft=p["n_fft"], n_mels=p["n_mels"], fmin=p["fmin"],
                                    fmax=p["fmax"], htk=p["htk"], norm="slaney", dtype=np.float64)
        np.save(out("mel", f"filterbank_{pname}.npy"), basis)
        for name, x in sigs.items():
            mel = librosa.feature.melspectrogram(
                y=x.astype(np.float64), sr=p["sr"], n_fft=p["n_fft"], hop_length=p["hop_length"],
                win_length=p["win_length"], window="hann", center=True, pad_mode="reflect", power=1.0,
                n_mels=p["n_mels"], fmin=p["fmin"], fmax=p["fmax"], htk=p["htk"], norm="slaney")
            np.save(out("mel", f"mel_{name}_{pname}.npy"), mel)
    with open(out("mel", "params.json"), "w") as f:
        json.dump(PARAMS, f, indent=1, sort_keys=True)


# ---------------------------------------------------------------- Griffin-Lim reference quality

def griffinlim_fixture():
    """librosa's mel_to_audio on the speech signal: the spectral convergence it reaches is
    the bar for the Swift Griffin-Lim (same settings, 32 iterations)."""
    x = signals()["speech"].astype(np.float64)
    p = PARAMS["sr16k"]
    kw = dict(sr=p["sr"], n_fft=p["n_fft"], hop_length=p["hop_length"], win_length=p["win_length"],
              fmin=p["fmin"], fmax=p["fmax"], htk=False, norm="slaney", power=1.0)
    mel = librosa.feature.melspectrogram(y=x, center=True, pad_mode="reflect", n_mels=80, **kw)
    linear = librosa.feature.inverse.mel_to_stft(mel, sr=p["sr"], n_fft=p["n_fft"], power=1.0, fmin=p["fmin"],
                                                 fmax=p["fmax"], htk=False, norm="slaney")
    y = librosa.griffinlim(linear, n_iter=32, hop_length=p["hop_length"], win_length=p["win_length"], n_fft=p["n_fft"],
                           center=True, pad_mode="reflect", length=len(x), random_state=0)
    target = np.abs(librosa.stft(x, n_fft=1024, hop_length=256, center=True, pad_mode="reflect"))
    got = np.abs(librosa.stft(y, n_fft=1024, hop_length=256, center=True, pad_mode="reflect"))
    sc = float(np.linalg.norm(target - got) / np.linalg.norm(target))
    remel = librosa.feature.melspectrogram(y=y, center=True, pad_mode="reflect", n_mels=80, **kw)
    mel_db = float(np.sqrt(np.mean((20 * np.log10(np.maximum(remel, 1e-5)) - 20 * np.log10(np.maximum(mel, 1e-5))) ** 2)))
    with open(out("mel", "griffinlim_librosa.json"), "w") as f:
        json.dump({"spectral_convergence": sc, "mel_db_rmse": mel_db, "n_iter": 32}, f, indent=1)


# ---------------------------------------------------------------- .npy interoperability

def npy_fixtures():
    a = (np.arange(12, dtype=np.float64).reshape(3, 4) * 0.5 - 1.25)
    np.save(out("npy", "f64_fortran.npy"), np.asfortranarray(a))
    np.save(out("npy", "f64_c.npy"), a)
    np.save(out("npy", "expected_3x4.npy"), a.astype(np.float32))
    with open(out("npy", "f32_v2.npy"), "wb") as f:
        np.lib.format.write_array(f, a.astype(np.float32), version=(2, 0))
    np.save(out("npy", "i16.npy"), np.array([[-32768, -1, 0], [1, 2, 32767]], dtype=np.int16))
    np.save(out("npy", "f32_3d_fortran.npy"), np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4)))
    np.save(out("npy", "f32_1d.npy"), np.array([1.5, -2.5, 3.25], dtype=np.float32))
    np.save(out("npy", "big_endian.npy"), a.astype(">f4"))
    np.save(out("npy", "object.npy"), np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    mel = np.abs(np.random.RandomState(3).randn(80, 17)).astype(np.float32)
    mel[5, 9] = np.nan
    np.save(out("npy", "mel_nan.npy"), mel)
    # What np.save writes for these arrays, byte for byte: the Swift writer must match.
    np.save(out("npy", "numpy_written_f32.npy"), np.arange(-6, 6, dtype=np.float32).reshape(3, 4) / 4)
    np.save(out("npy", "numpy_written_f64_1d.npy"), np.linspace(-1, 1, 7))


# ---------------------------------------------------------------- audio files

def audio_fixtures():
    sr = 16000
    t = np.arange(1600) / sr
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = 0.25 * np.sin(2 * np.pi * 660 * t)
    stereo = np.stack([left, right], axis=1)
    # 16-bit integers exactly, so every format can be checked against known values.
    q16 = np.round(stereo * 32767).astype(np.int16)
    mono16 = q16[:, 0]
    sf.write(out("audio", "mono_pcm16.wav"), mono16, sr, subtype="PCM_16")
    np.save(out("audio", "mono_pcm16_ints.npy"), mono16)
    sf.write(out("audio", "stereo_pcm16.wav"), q16, sr, subtype="PCM_16")
    np.save(out("audio", "stereo_expected_mono.npy"), (q16.astype(np.float64) / 32768).mean(axis=1))
    sf.write(out("audio", "mono_pcm24.wav"), mono16.astype(np.int32) << 16, sr, subtype="PCM_24")
    sf.write(out("audio", "mono_pcm32.wav"), mono16.astype(np.int32) << 16, sr, subtype="PCM_32")
    sf.write(out("audio", "mono_float.wav"), mono16.astype(np.float32) / 32768, sr, subtype="FLOAT")
    sf.write(out("audio", "mono_u8.wav"), (mono16 // 256 * 256).astype(np.int16), sr, subtype="PCM_U8")
    np.save(out("audio", "mono_u8_expected.npy"), (mono16 // 256).astype(np.float64) / 128)
    sf.write(out("audio", "mono.flac"), mono16, sr, subtype="PCM_16", format="FLAC")
    sf.write(out("audio", "mono.aiff"), mono16, sr, subtype="PCM_16", format="AIFF")
    sf.write(out("audio", "tone440.ogg"), left.astype(np.float32), sr, format="OGG", subtype="VORBIS")


# ---------------------------------------------------------------- discretised mixture of logistics

def dmol_reference(params, x, M, bits, log_scale_min):
    """log p(x) under the discretised mixture of logistics, in torch float64, written the
    way PixelCNN++ and r9y9/wavenet_vocoder write it (sigmoid differences, where-branches),
    with DESIGN.md's bit-depth edges. params (3M, T), x (T)."""
    import torch
    import torch.nn.functional as F
    logits, means = params[:M], params[M:2 * M]
    log_scales = torch.clamp(params[2 * M:], min=log_scale_min)
    h = 1.0 / (2 ** bits - 1)
    c = x[None, :] - means
    inv = torch.exp(-log_scales)
    plus, minus = inv * (c + h), inv * (c - h)
    log_cdf_plus = plus - F.softplus(plus)
    log_one_minus_cdf_min = -F.softplus(minus)
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv * c
    log_pdf_mid = mid - log_scales - 2 * F.softplus(mid)
    inner_inner = torch.where(delta > 1e-5, torch.log(torch.clamp(delta, min=1e-300)), log_pdf_mid + np.log(2 * h))
    inner = torch.where(x[None, :] > 1 - h, log_one_minus_cdf_min, inner_inner)
    log_p = torch.where(x[None, :] < -1 + h, log_cdf_plus, inner)
    return torch.logsumexp(log_p + F.log_softmax(logits, dim=0), dim=0)


def dmol_fixtures():
    """Inputs hitting every branch: x = -1 and 1 (edge bins), inside, far from every mean
    (mass underflow), tiny scales (at and below the -7 clamp), huge scales; M = 1 and 10."""
    import torch
    torch.manual_seed(0)
    rng = np.random.RandomState(5)
    for M in (1, 10):
        cases = []
        for x, mean_centre, log_scale in [
            (-1.0, -0.99, -4.0), (-1.0, 0.5, -1.0), (1.0, 0.99, -4.0), (1.0, -0.2, 0.5),
            (0.25, 0.25, -6.0), (0.25, 0.2, -5.0), (-0.4, 0.3, -7.0), (0.1, 0.1, -9.0),
            (0.0, 0.7, -6.5), (0.6, 0.6, 3.0), (-0.7, -0.5, 2.0), (0.999, 0.99, -5.5),
            (-0.3, -0.3001, -7.0), (0.05, 0.9, -3.0), (0.8, -0.8, -2.0), (-0.9999, -0.9999, -6.0),
        ]:
            q = np.round((x + 1) / 2 * 65535) / 65535 * 2 - 1  # on the 16-bit grid
            logits = rng.randn(M) * 2
            means = mean_centre + rng.randn(M) * (0.002 if M > 1 else 0)
            log_scales = log_scale + rng.randn(M) * (0.3 if M > 1 else 0)
            cases.append((q, np.concatenate([logits, means, log_scales])))
        # Inputs are rounded to float32 (what the Swift kernel reads); the reference is float64.
        x = torch.tensor(np.float32([c[0] for c in cases]), dtype=torch.float64)
        params = torch.tensor(np.stack([c[1] for c in cases], axis=1).astype(np.float32), dtype=torch.float64, requires_grad=True)
        log_p = dmol_reference(params, x, M, 16, -7.0)
        loss = -log_p.mean()
        loss.backward()
        np.save(out("engine", f"dmol_m{M}_params.npy"), params.detach().numpy())
        np.save(out("engine", f"dmol_m{M}_x.npy"), x.numpy())
        np.save(out("engine", f"dmol_m{M}_logp.npy"), log_p.detach().numpy())
        np.save(out("engine", f"dmol_m{M}_grad.npy"), params.grad.numpy())


# ---------------------------------------------------------------- discretised Gaussian

def dgauss_reference(x, mean, log_scale, bits, log_scale_min):
    """log P(x) of the bin of x under N(mean, e^(2 max(log_scale, min))) at 50 digits (mpmath):
    the CDF below the top of the bottom bin, above the bottom of the top bin, else the CDF
    difference across the bin. Returns (log P, d/d mean, d/d log_scale), the derivatives by
    mpmath's numerical differentiation (0 for a log-scale at or below the clamp)."""
    import mpmath as mp
    mp.mp.dps = 50
    h = mp.mpf(1) / (2 ** bits - 1)
    x = mp.mpf(x)

    def log_p(mu, ls):
        s = mp.exp(ls)
        a, b = (x + h - mu) / s, (x - h - mu) / s
        if x < -1 + h:
            return mp.log(mp.ncdf(a))
        if x > 1 - h:
            return mp.log(mp.ncdf(-b))
        if b >= 0:  # the same mass from the reflected side, where it does not cancel
            return mp.log(mp.ncdf(-b) - mp.ncdf(-a))
        return mp.log(mp.ncdf(a) - mp.ncdf(b))

    mu = mp.mpf(mean)
    clamped = log_scale <= log_scale_min
    ls = mp.mpf(max(log_scale, log_scale_min))
    value = log_p(mu, ls)
    d_mu = mp.diff(lambda m: log_p(m, ls), mu)
    d_ls = 0 if clamped else mp.diff(lambda v: log_p(mu, v), ls)
    return float(value), float(d_mu), float(d_ls)


def dgauss_fixtures():
    """Inputs hitting every branch of the discretised Gaussian on the 16-bit grid: x = -1 and 1
    (edge bins, near and far), inside, tens and thousands of scales out (deep tails), log-scales
    at and below the clamp, huge scales, a mean outside [-1, 1], a scale under one bin (with
    the clamp at -16), and bins on either side of the mean and across it."""
    cases = [  # x, mean, log-scale, clamp
        (-1.0, -0.99, -4.0, -7.0), (-1.0, 0.5, -1.0, -7.0), (1.0, 0.99, -4.0, -7.0), (1.0, -0.2, 0.5, -7.0),
        (0.25, 0.25, -6.0, -7.0), (0.25, 0.2, -5.0, -7.0), (-0.4, 0.3, -7.0, -7.0), (0.1, 0.1, -9.0, -7.0),
        (0.0, 0.7, -6.5, -7.0), (0.6, 0.6, 3.0, -7.0), (-0.7, -0.5, 2.0, -7.0), (0.999, 0.99, -5.5, -7.0),
        (-0.3, -0.3001, -7.0, -7.0), (0.05, 0.9, -3.0, -7.0), (0.8, -0.8, -2.0, -7.0), (0.8, -0.8, -7.0, -7.0),
        (0.3, 1.4, -1.5, -7.0), (0.0, 0.0, -14.0, -16.0), (0.0, 2e-5, -13.0, -16.0), (-1.0, 0.2, -6.0, -7.0),
        (1.0, -0.3, -6.0, -7.0), (0.5, 0.49999, -10.0, -16.0),
    ]
    x, params, logp, grad, clamps = [], [[], []], [], [[], []], []
    T = len(cases)
    for cx, mean, ls, clamp in cases:
        q = float(np.float32(np.round((cx + 1) / 2 * 65535) / 65535 * 2 - 1))  # the 16-bit grid, as float32
        mean, ls = float(np.float32(mean)), float(np.float32(ls))
        value, d_mu, d_ls = dgauss_reference(q, mean, ls, 16, clamp)
        x.append(q); params[0].append(mean); params[1].append(ls); clamps.append(clamp)
        logp.append(value)
        # The gradient of the mean negative log-likelihood.
        grad[0].append(-d_mu / T); grad[1].append(-d_ls / T)
    np.save(out("engine", "dgauss_x.npy"), np.array(x))
    np.save(out("engine", "dgauss_params.npy"), np.array(params))
    np.save(out("engine", "dgauss_clamp.npy"), np.array(clamps))
    np.save(out("engine", "dgauss_logp.npy"), np.array(logp))
    np.save(out("engine", "dgauss_grad.npy"), np.array(grad))


# ---------------------------------------------------------------- safetensors interoperability

def safetensors_fixtures():
    """Files written by Python's safetensors: F32 tensors that the Swift writer must
    reproduce byte for byte, the same with metadata, and a file mixing F32, F16, BF16 and
    F64 for the reader."""
    import torch
    from safetensors.numpy import save_file
    from safetensors.torch import save_file as save_torch
    f32 = {
        "layers.0.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8 - 1,
        "layers.0.bias": np.array([0.5, -0.25, 3e-8], dtype=np.float32),
        "head": np.array([[1.0, -2.0], [np.float32(np.pi), 1e30]], dtype=np.float32),
    }
    meta = {"kind": "teacher", "format_version": "1", "step": "42",
            "config": '{"layers": 3, "name": "caf\u00e9 \"q\""}', "note": "line\nbreak/slash é"}
    # Python orders __metadata__ as its hash map does, so bytes are compared without it.
    save_file(f32, out("engine", "st_f32.safetensors"))
    save_file(f32, out("engine", "st_f32_meta.safetensors"), metadata=meta)
    values = np.array([[0.5, -1.5, 65504.0], [6.1e-5, 3.0e-7, -0.0]], dtype=np.float32)
    mixed = {
        "half": torch.tensor(values, dtype=torch.float16),
        "brain": torch.tensor(values, dtype=torch.bfloat16),
        "double": torch.tensor(values, dtype=torch.float64),
        "single": torch.tensor(values, dtype=torch.float32),
    }
    save_torch(mixed, out("engine", "st_mixed.safetensors"), metadata={"kind": "mixed"})
    for k, v in mixed.items():
        np.save(out("engine", f"st_mixed_{k}.npy"), v.to(torch.float32).numpy())


# ---------------------------------------------------------------- WaveNet residual stack

def add_stack_parameters(add, prefix, L, K, R, G, S, C, Ku, E=0):
    """The residual stack's parameters, named as Parawave names them, in a fixed draw order
    (with E > 0, each layer's (2G x E) projection of the speaker embedding too)."""
    add(f"{prefix}.input.weight", (1, R, 1), 1); add(f"{prefix}.input.bias", (R,), 1)
    add(f"{prefix}.upsample.weight", (Ku, C, C), Ku * C); add(f"{prefix}.upsample.bias", (C,), Ku * C)
    for l in range(L):
        n = f"{prefix}.layers.{l}"
        add(f"{n}.dilated.weight", (K, 2 * G, R), K * R); add(f"{n}.dilated.bias", (2 * G,), K * R)
        add(f"{n}.condition.weight", (1, 2 * G, C), C)
        add(f"{n}.skip.weight", (1, S, G), G); add(f"{n}.skip.bias", (S,), G)
        add(f"{n}.residual.weight", (1, R, G), G); add(f"{n}.residual.bias", (R,), G)
        if E:
            add(f"{n}.speaker.weight", (1, 2 * G, E), E)


def stack_conv(t, inp, name, dilation=1, causal=True, bias=True):
    """Parawave's Conv1d in torch: weights (K, Cout, Cin) -> torch's (Cout, Cin, K); causal
    convolutions pad (K-1)d on the left, the others (K-1)/2 on each side."""
    import torch.nn.functional as F
    w = t[name + ".weight"]
    k = w.shape[0]
    inp = F.pad(inp, ((k - 1) * dilation, 0)) if causal else F.pad(inp, ((k - 1) // 2, (k - 1) // 2))
    return F.conv1d(inp, w.permute(1, 2, 0), t[name + ".bias"] if bias else None, dilation=dilation)


def stack_forward(t, prefix, x, mel, L, G, hop, speaker=None):
    """DESIGN.md section 3's residual stack on x (B, 1, T) and mel (B, C, F): the skip sum.
    With `speaker` (B, E), every layer adds W_g e_b to h, constant over time."""
    import torch
    c_up = stack_conv(t, mel.repeat_interleave(hop, dim=2), f"{prefix}.upsample", causal=False)
    res = stack_conv(t, x, f"{prefix}.input")
    skip = 0
    for l in range(L):
        n = f"{prefix}.layers.{l}"
        h = stack_conv(t, res, f"{n}.dilated", dilation=2 ** l) + stack_conv(t, c_up, f"{n}.condition", bias=False)
        if speaker is not None:
            h = h + torch.einsum("oe,be->bo", t[f"{n}.speaker.weight"][0], speaker)[:, :, None]
        z = torch.tanh(h[:, :G]) * torch.sigmoid(h[:, G:])
        skip = skip + stack_conv(t, z, f"{n}.skip")
        res = (res + stack_conv(t, z, f"{n}.residual")) * np.sqrt(0.5)
    return skip


def stack_fixture():
    """A 3-layer stack (dilations 1, 2, 4; kernel 3; R = G = S = 8; 5 mel bands, hop 4)
    written in PyTorch from DESIGN.md section 3, in float64 from float32 parameters.
    Saved as safetensors in Parawave's layouts (convolution weights (K, Cout, Cin)):
    parameters, inputs, the skip sum, loss = sum(skip * proj) and every gradient."""
    import torch
    import torch.nn.functional as F
    from safetensors.numpy import save_file
    rng = np.random.RandomState(11)
    L, K, R, G, S, C, hop, Ku, B, Fr = 3, 3, 8, 8, 8, 5, 4, 3, 2, 6
    T = Fr * hop
    P = {}

    def add(name, shape, fan):
        P[name] = (rng.uniform(-1, 1, size=shape) / np.sqrt(fan)).astype(np.float32)

    add_stack_parameters(add, "stack", L, K, R, G, S, C, Ku)
    x = rng.uniform(-1, 1, (B, 1, T)).astype(np.float32)
    mel = rng.randn(B, C, Fr).astype(np.float32)
    proj = rng.randn(B, S, T).astype(np.float32)
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in P.items()}
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)

    skip = stack_forward(t, "stack", tx, torch.tensor(mel, dtype=torch.float64), L, G, hop)
    loss = (skip * torch.tensor(proj, dtype=torch.float64)).sum()
    loss.backward()
    tensors = dict(P)
    tensors.update({"input.x": x, "input.mel": mel, "input.proj": proj,
                    "output.skip": skip.detach().numpy().astype(np.float32),
                    "output.loss": np.array([loss.item()], dtype=np.float32),
                    "grad.x": tx.grad.numpy().astype(np.float32)})
    for k, v in t.items():
        # The last layer's residual branch does not reach the output: its gradient is zero.
        tensors["grad." + k] = np.zeros_like(P[k]) if v.grad is None else v.grad.numpy().astype(np.float32)
    save_file(tensors, out("models", "stack3.safetensors"),
              metadata={"layers": str(L), "kernel": str(K), "residual": str(R), "gated": str(G), "skip": str(S),
                        "mels": str(C), "hop": str(hop), "upsample_kernel": str(Ku), "batch": str(B), "frames": str(Fr)})


def teacher_fixture(speakers=False):
    """A tiny teacher (3 layers, kernel 2, R = G = S = 6, M = 3, 4 mel bands, hop 4) in
    PyTorch float64 from DESIGN.md section 3: per-band mel normalisation, the residual
    stack on x shifted right by one, the head relu -> 1x1 -> relu -> 1x1 -> 3M, and the
    16-bit discretised-mixture NLL averaged over a mask. Inputs hit x = -1 and x = 1.
    Saved: parameters, inputs, mixture parameters, loss, every gradient and the gradient
    with respect to the stack's (shifted) input.

    With `speakers`: the same teacher conditioned on 3 speakers through a 4-wide embedding
    table (teacher.speaker_embedding) and a (2G x E) projection per layer added to h; the
    batch's utterances are by speakers 2 and 0 (teacher_speakers.safetensors)."""
    import torch
    import torch.nn.functional as F
    from safetensors.numpy import save_file
    rng = np.random.RandomState(29 if speakers else 23)
    L, K, R, G, S, M, C, hop, Ku, B, Fr, bits = 3, 2, 6, 6, 6, 3, 4, 4, 3, 2, 5, 16
    N, E = (3, 4) if speakers else (0, 0)
    T = Fr * hop
    P = {}

    def add(name, shape, fan):
        P[name] = (rng.uniform(-1, 1, size=shape) / np.sqrt(fan)).astype(np.float32)

    add_stack_parameters(add, "teacher", L, K, R, G, S, C, Ku, E)
    if speakers:
        add("teacher.speaker_embedding", (N, E), 1 / 3)   # uniform on +-sqrt(3): unit variance
    add("teacher.head.0.weight", (1, S, S), S); add("teacher.head.0.bias", (S,), S)
    add("teacher.head.1.weight", (1, 3 * M, S), S); add("teacher.head.1.bias", (3 * M,), S)
    mel_mean = (rng.uniform(-1, 1, C) - 5).astype(np.float32)
    mel_std = (0.5 + rng.uniform(0, 1, C)).astype(np.float32)
    x = np.clip(0.7 * np.sin(np.arange(B * T) * 0.3) + 0.1 * rng.randn(B * T), -1, 1).reshape(B, T).astype(np.float32)
    x[0, 3], x[1, 7] = -1.0, 1.0
    mel = (rng.randn(B, C, Fr) * 2 - 5).astype(np.float32)
    mask = np.ones((B, T), dtype=np.float32)
    mask[1, T - 3:] = 0
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in P.items()}
    shifted = np.zeros((B, 1, T), dtype=np.float32)
    shifted[:, 0, 1:] = x[:, :-1]
    tin = torch.tensor(shifted, dtype=torch.float64, requires_grad=True)

    normalised = (torch.tensor(mel, dtype=torch.float64) - torch.tensor(mel_mean, dtype=torch.float64)[None, :, None]) \
        / torch.tensor(mel_std, dtype=torch.float64)[None, :, None]
    who = np.array([2, 0][:B]) if speakers else None
    embedding = t["teacher.speaker_embedding"][torch.tensor(who)] if speakers else None
    skip = stack_forward(t, "teacher", tin, normalised, L, G, hop, speaker=embedding)
    params = stack_conv(t, F.relu(stack_conv(t, F.relu(skip), "teacher.head.0")), "teacher.head.1")
    tx = torch.tensor(x, dtype=torch.float64)
    logp = torch.stack([dmol_reference(params[b], tx[b], M, bits, -7.0) for b in range(B)])
    tmask = torch.tensor(mask, dtype=torch.float64)
    loss = -(logp * tmask).sum() / tmask.sum()
    loss.backward()
    tensors = dict(P)
    tensors.update({"input.x": x, "input.mel": mel, "input.mask": mask, "teacher.mel_mean": mel_mean, "teacher.mel_std": mel_std,
                    "output.params": params.detach().numpy().astype(np.float32),
                    "output.loss": np.array([loss.item()], dtype=np.float32),
                    "grad.input": tin.grad.numpy()[:, 0].astype(np.float32)})
    if speakers:
        tensors["input.speakers"] = who.astype(np.float32)
    for k, v in t.items():
        tensors["grad." + k] = np.zeros_like(P[k]) if v.grad is None else v.grad.numpy().astype(np.float32)
    save_file(tensors, out("models", "teacher_speakers.safetensors" if speakers else "teacher.safetensors"),
              metadata={"layers": str(L), "kernel": str(K), "channels": str(R), "mixtures": str(M), "mels": str(C),
                        "hop": str(hop), "batch": str(B), "frames": str(Fr), "bits": str(bits),
                        **({"speakers": str(N), "speaker_channels": str(E)} if speakers else {})})

# ---------------------------------------------------------------- transposed convolution (upsampler)

TRANSPOSED_CONV_CASES = [
    # name, Cin, Cout, stride, kernel, batch, frames
    ("s2", 3, 5, 2, 4, 2, 7),
    ("s4", 4, 3, 4, 8, 3, 5),
    ("s16", 2, 4, 16, 32, 2, 3),
    ("s3k5", 3, 2, 3, 5, 2, 6),      # K - s even, s odd: padding 1, exactly F*s outputs
    ("s3k6", 2, 3, 3, 6, 2, 5),      # K - s odd: PyTorch gives F*s + 1 samples, the last is dropped
    ("s4k4", 3, 3, 4, 4, 1, 4),      # K = s: no overlap, padding 0
    ("s256", 2, 3, 256, 512, 2, 3),  # a hop-sized stride with small channels
]


def transposed_conv_fixture():
    """torch.nn.ConvTranspose1d(Cin, Cout, K, stride=s, padding=(K - s)//2) in float64 from
    float32 parameters, its output cut to exactly F*s samples, loss = sum(y * proj) and the
    gradients of weight, bias and input. Weights are saved in Parawave's (K, Cout, Cin)
    layout (torch's is (Cin, Cout, K)). The cases are described in one metadata entry, so
    the file's bytes are reproducible."""
    import torch
    from safetensors.numpy import save_file
    rng = np.random.RandomState(13)
    tensors, cases = {}, []
    for name, cin, cout, s, k, b, frames in TRANSPOSED_CONV_CASES:
        pad = (k - s) // 2
        layer = torch.nn.ConvTranspose1d(cin, cout, k, stride=s, padding=pad).double()
        w = (rng.uniform(-1, 1, (cin, cout, k)) / np.sqrt(cin * k / s)).astype(np.float32)
        bias = rng.uniform(-0.5, 0.5, cout).astype(np.float32)
        x = rng.randn(b, cin, frames).astype(np.float32)
        proj = rng.randn(b, cout, frames * s).astype(np.float32)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(w, dtype=torch.float64))
            layer.bias.copy_(torch.tensor(bias, dtype=torch.float64))
        tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        full = layer(tx)
        assert full.shape[2] == frames * s + (k - s) % 2, full.shape
        y = full[:, :, :frames * s]
        loss = (y * torch.tensor(proj, dtype=torch.float64)).sum()
        loss.backward()
        ours = lambda a: np.ascontiguousarray(a.transpose(2, 1, 0))  # (Cin, Cout, K) -> (K, Cout, Cin)
        tensors.update({
            f"{name}.weight": ours(w), f"{name}.bias": bias, f"{name}.x": x, f"{name}.proj": proj,
            f"{name}.y": y.detach().numpy().astype(np.float32),
            f"{name}.grad.weight": ours(layer.weight.grad.numpy()).astype(np.float32),
            f"{name}.grad.bias": layer.bias.grad.numpy().astype(np.float32),
            f"{name}.grad.x": tx.grad.numpy().astype(np.float32),
        })
        cases.append({"name": name, "inputChannels": cin, "outputChannels": cout, "stride": s, "kernelSize": k,
                      "padding": pad, "batch": b, "frames": frames})
    save_file(tensors, out("engine", "transposed_conv.safetensors"),
              metadata={"cases": json.dumps(cases, sort_keys=True)})


# ---------------------------------------------------------------- spectral losses (distillation)

SPECTRAL_CASES = [
    # name, batch, length (not a multiple of any hop), resolutions of power and magnitude
    ("a", 2, 777, [(64, 16, 48)]),
    ("b", 2, 915, [(128, 32, 128)]),
]
SPECTRAL_MULTI_RESOLUTION = [(64, 16, 48), (128, 32, 128), (32, 8, 19)]  # an odd window: off-centre by half a sample


def spectral_reference(kind, resolutions, x, y):
    """DESIGN.md section 5's spectral losses in torch: torch.stft with center=True and zero
    padding, a periodic Hann window of win centred in n_fft, spectra divided by
    sqrt(sum window^2); P = |X|^2 (B, K, F). power: mean over (B, K) of the squared difference
    of frame-averaged P; magnitude: the same with sqrt(P + 1e-7); multi_resolution: the mean
    over resolutions of ||My - Mx||_F / ||My||_F + mean |log My - log Mx|, M = sqrt(max(P, 1e-7)).
    Also returns, for multi_resolution, the smallest |log My - log Mx| / 1e-4 and
    |log(P / 1e-7)| / 1e-2, so the caller can check that no element sits near a kink (of the
    absolute value or the clamp), where float32 rounding could change the gradient."""
    import torch
    total, margin = 0, np.inf
    for n_fft, hop, win in resolutions:
        window = torch.hann_window(win, periodic=True, dtype=x.dtype)
        scale = 1 / torch.sqrt((window ** 2).sum())

        def power(s):
            spec = torch.stft(s, n_fft, hop_length=hop, win_length=win, window=window, center=True,
                              pad_mode="constant", return_complex=True) * scale
            return spec.real ** 2 + spec.imag ** 2

        px, py = power(x), power(y)
        assert px.shape[2] == 1 + x.shape[1] // hop
        if kind == "power":
            return ((px.mean(2) - py.mean(2)) ** 2).mean(), margin
        if kind == "magnitude":
            mx, my = torch.sqrt(px + 1e-7), torch.sqrt(py + 1e-7)
            return ((mx.mean(2) - my.mean(2)) ** 2).mean(), margin
        mx, my = torch.sqrt(torch.clamp(px, min=1e-7)), torch.sqrt(torch.clamp(py, min=1e-7))
        convergence = torch.sqrt(((my - mx) ** 2).sum()) / torch.sqrt((my ** 2).sum())
        log_difference = torch.log(my) - torch.log(mx)
        margin = min(margin, log_difference.abs().min().item() / 1e-4,
                     torch.log(torch.cat([px, py]) / 1e-7).abs().min().item() / 1e-2)
        total = total + convergence + log_difference.abs().mean()
    return total / len(resolutions), margin


def spectral_fixture():
    """Spectral losses of generated x against real y (both (B, T), float32) for every kind,
    in torch float64 from the float32 signals, with dL/dx by autograd: x is white noise plus
    a tone, y two tones plus noise, 12 dB quieter, so every kind's loss is far from zero.
    Written as .npy arrays (x, y, one gradient per kind) and spectral/cases.json (settings,
    losses, and how far the same computation in torch float32 lands from the float64
    gradient, by the Swift tests' worst-element measure: the floor that single precision sets)."""
    import torch
    rng = np.random.RandomState(32)
    cases = []
    for name, batch, length, resolutions in SPECTRAL_CASES:
        t = np.arange(length)
        x = 0.4 * rng.randn(batch, length) + 0.2 * np.sin(2 * np.pi * 0.06 * t + rng.uniform(0, 6, (batch, 1)))
        y = 0.25 * (0.4 * np.sin(2 * np.pi * 0.05 * t + rng.uniform(0, 6, (batch, 1)))
                    + 0.2 * np.sin(2 * np.pi * 0.21 * t + rng.uniform(0, 6, (batch, 1))) + 0.2 * rng.randn(batch, length))
        x, y = x.astype(np.float32), y.astype(np.float32)
        np.save(out("spectral", f"{name}_x.npy"), x)
        np.save(out("spectral", f"{name}_y.npy"), y)
        entry = {"name": name, "batch": batch, "length": length, "losses": {}, "resolutions": {}, "float32_gradient_error": {}}
        for kind in ("power", "magnitude", "multi_resolution"):
            chosen = SPECTRAL_MULTI_RESOLUTION if kind == "multi_resolution" else resolutions
            gradients = {}
            for dtype in (torch.float64, torch.float32):
                tx = torch.tensor(x, dtype=dtype, requires_grad=True)
                loss, margin = spectral_reference(kind, chosen, tx, torch.tensor(y, dtype=dtype))
                loss.backward()
                gradients[dtype] = tx.grad.numpy().astype(np.float32)
                if dtype == torch.float64:
                    # No power near the 1e-7 floor and no log-magnitude difference near 0 (the kinks).
                    assert margin > 1, (name, kind, margin)
                    entry["losses"][kind] = loss.item()
            reference = gradients[torch.float64]
            floor = 1e-3 * np.abs(reference).max()
            entry["float32_gradient_error"][kind] = float(
                (np.abs(gradients[torch.float32] - reference) / np.maximum(np.abs(reference), floor)).max())
            np.save(out("spectral", f"{name}_{kind}_grad.npy"), reference)
            entry["resolutions"][kind] = [{"n_fft": n, "hop": h, "win_length": w} for n, h, w in chosen]
        cases.append(entry)
    with open(out("spectral", "cases.json"), "w") as f:
        json.dump(cases, f, indent=1, sort_keys=True)


# ---------------------------------------------------------------- evaluation metrics

def quality_reference(r, g, p):
    """The metrics of `parawave evaluate` (QualityMetrics in Swift) by librosa and scipy in
    float64: log-mel dB RMSE, multi-resolution STFT distance (512/1024/2048, hop N/4),
    mel-cepstral distortion over c1..c24 of the orthonormal DCT-II of the natural-log mel."""
    import scipy.fft
    n = min(len(r), len(g))
    r, g = r[:n].astype(np.float64), g[:n].astype(np.float64)
    kw = dict(sr=p["sr"], n_fft=p["n_fft"], hop_length=p["hop_length"], win_length=p["win_length"], window="hann",
              center=True, pad_mode="reflect", power=1.0, n_mels=p["n_mels"], fmin=p["fmin"], fmax=p["fmax"],
              htk=p["htk"], norm="slaney")
    mr, mg = librosa.feature.melspectrogram(y=r, **kw), librosa.feature.melspectrogram(y=g, **kw)
    log_mel_db = np.sqrt(np.mean((20 * np.log10(np.maximum(mr, 1e-5)) - 20 * np.log10(np.maximum(mg, 1e-5))) ** 2))
    sc, lm = [], []
    for size in (512, 1024, 2048):
        def mag(y):
            power = np.abs(librosa.stft(y, n_fft=size, hop_length=size // 4, win_length=size, window="hann",
                                        center=True, pad_mode="reflect")) ** 2
            return np.sqrt(np.maximum(power, 1e-7))
        sr_, sg = mag(r), mag(g)
        sc.append(np.linalg.norm(sr_ - sg) / np.linalg.norm(sr_))
        lm.append(np.mean(np.abs(np.log(sr_) - np.log(sg))))
    cr = scipy.fft.dct(np.log(np.maximum(mr, 1e-5)), type=2, norm="ortho", axis=0)[1:25]
    cg = scipy.fft.dct(np.log(np.maximum(mg, 1e-5)), type=2, norm="ortho", axis=0)[1:25]
    mcd = np.mean(10 / np.log(10) * np.sqrt(2 * np.sum((cr - cg) ** 2, axis=0)))
    return {"log_mel_db": float(log_mel_db), "spectral_convergence": float(np.mean(sc)),
            "log_magnitude": float(np.mean(lm)), "mcd_db": float(mcd)}


def quality_fixture():
    """A speech-like reference and four renderings of it: with noise at 26 dB SNR, low-passed
    at 3 kHz and quieter, longer than the reference (only the common length counts), and silent
    (every floor). Written as quality/*.npy and quality/metrics.json (16 kHz, 1024/256/80)."""
    from scipy.signal import butter, lfilter
    rng = np.random.RandomState(61)
    r = speech_like(16000, 1.3, 5)
    cases = {
        "noisy": r + 0.01 * rng.randn(len(r)),
        "lowpassed": 0.7 * lfilter(*butter(6, 3000, fs=16000), r),
        "longer": np.concatenate([0.9 * r, 0.1 * rng.randn(700)]),
        "silent": np.zeros(len(r)),
    }
    np.save(out("quality", "reference.npy"), r)
    results = {}
    for name, g in cases.items():
        g = g.astype(np.float32)
        np.save(out("quality", f"generated_{name}.npy"), g)
        results[name] = quality_reference(r, g, PARAMS["sr16k"])
    with open(out("quality", "metrics.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)


# ---------------------------------------------------------------- pitch predictor

def pitch_predictor_fixture():
    """The pitch predictor (DESIGN.md section 10) in torch float64, written from its
    definition: centred dilated convolutions (layer l dilation 2^l), h_0 = relu(conv_0(mel)),
    h_l = h_(l-1) + relu(conv_l(h_(l-1))), and a 1x1 output of a voicing logit and the logits
    of N F0 bins 20 cents apart from fmin. Loss = binary cross-entropy of the voicing over the
    real frames plus, over the real voiced frames, the cross-entropy of the bins against a
    Gaussian of 25 cents around the target's log-F0 (normalised over the bins). Writes the
    inputs, the output, the loss terms and every parameter gradient. Weights are stored in
    the toolkit's layout (K, Cout, Cin)."""
    import torch
    import torch.nn.functional as F
    from safetensors.numpy import save_file
    rng = np.random.default_rng(31)
    B, C, frames, H, K, L = 2, 5, 23, 6, 3, 3
    fmin, fmax = 60.0, 400.0
    bins = int(np.floor(1200 * np.log2(fmax / fmin) / 20)) + 1
    tensors = {}
    cin = C
    for layer in range(L):
        tensors[f"p.{layer}.weight"] = rng.uniform(-0.6, 0.6, (K, H, cin)).astype(np.float32)
        tensors[f"p.{layer}.bias"] = rng.uniform(-0.3, 0.3, (H,)).astype(np.float32)
        cin = H
    tensors["p.out.weight"] = rng.uniform(-0.6, 0.6, (1, 1 + bins, H)).astype(np.float32)
    tensors["p.out.bias"] = rng.uniform(-0.3, 0.3, (1 + bins,)).astype(np.float32)
    mel = rng.uniform(-2, 2, (B, C, frames)).astype(np.float32)
    voiced = rng.uniform(size=(B, frames)) < 0.6
    f0 = np.where(voiced, rng.uniform(50, 420, (B, frames)), 0).astype(np.float32)  # some outside the range
    mask = np.ones((B, frames), np.float32)
    mask[1, -5:] = 0
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in tensors.items()}
    h = torch.tensor(mel, dtype=torch.float64)
    for layer in range(L):
        d = 2 ** layer
        w = params[f"p.{layer}.weight"].permute(1, 2, 0)  # (Cout, Cin, K), torch's layout
        u = F.conv1d(h, w, params[f"p.{layer}.bias"], padding=(K - 1) // 2 * d, dilation=d)
        h = torch.relu(u) if layer == 0 else h + torch.relu(u)
    output = F.conv1d(h, params["p.out.weight"].permute(1, 2, 0), params["p.out.bias"])
    target = torch.tensor(voiced, dtype=torch.float64)
    m = torch.tensor(mask, dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits(output[:, 0], target, reduction="none")
    voicing = (bce * m).sum() / m.sum()
    cents = np.clip(1200 * np.log2(np.where(voiced, f0, fmin) / fmin), 0, (bins - 1) * 20)
    centres = 20.0 * np.arange(bins)
    q = np.exp(-0.5 * ((centres[None, :, None] - cents[:, None, :]) / 25.0) ** 2)
    q = torch.tensor(q / q.sum(axis=1, keepdims=True))
    cross_entropy = -(q * F.log_softmax(output[:, 1:], dim=1)).sum(dim=1)
    vm = m * target
    pitch = (cross_entropy * vm).sum() / vm.sum()
    loss = voicing + pitch
    loss.backward()
    result = dict(tensors)
    result["input.mel"] = mel
    result["input.f0"] = f0
    result["input.mask"] = mask
    result["output.out"] = output.detach().numpy().astype(np.float32)
    result["output.loss"] = np.float32([loss.item(), voicing.item(), pitch.item()])
    for k, v in params.items():
        result["grad." + k] = v.grad.numpy().astype(np.float32)
    save_file(result, out("models", "pitch_predictor.safetensors"),
              metadata={"batch": str(B), "mels": str(C), "frames": str(frames), "channels": str(H), "kernel": str(K),
                        "layers": str(L), "fmin": str(fmin), "fmax": str(fmax)})


def linear_prediction_fixture():
    """Linear prediction from the mel alone (MelLinearPrediction in Swift), by numpy and
    scipy: librosa's log-mel of 16-bit speech-like audio with silent stretches (bands at the
    log floor), the filterbank's pseudo-inverse (numpy's SVD pinv), the power spectrum with
    the 16-bit quantisation floor, the autocorrelation by numpy's inverse real FFT, and the
    predictor by scipy's Toeplitz solver (not Levinson-Durbin); E = r_0 + sum_k a_k r_k."""
    from safetensors.numpy import save_file
    from scipy.linalg import solve_toeplitz
    c = PARAMS["sr16k"]
    sr, n_fft, order, bits = c["sr"], c["n_fft"], 24, 16
    voiced = speech_like(sr, 0.6, seed=11)
    audio = np.concatenate([np.zeros(2000), voiced, np.zeros(3000), 0.5 * voiced[:4000]])
    audio = np.round(audio * 32767) / 32767
    audio = audio.astype(np.float32)
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=c["n_mels"], fmin=c["fmin"], fmax=c["fmax"], htk=c["htk"])
    magnitude = np.abs(librosa.stft(audio.astype(np.float64), n_fft=n_fft, hop_length=c["hop_length"], win_length=c["win_length"],
                                    window="hann", center=True, pad_mode="reflect"))
    log_mel = np.log(np.maximum(basis.astype(np.float64) @ magnitude, 1e-5)).astype(np.float32)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(c["win_length"]) / c["win_length"])
    step = 2 / (2.0 ** bits - 1)
    noise = np.sum(window ** 2) * step ** 2 / 12
    inverse = np.linalg.pinv(basis.astype(np.float32).astype(np.float64))
    mel = np.where(log_mel.astype(np.float64) <= np.log(1e-5) + 1e-6, 0.0, np.exp(log_mel.astype(np.float64)))
    frames = mel.shape[1]
    coefficients = np.zeros((frames, order))
    log_rms = np.zeros(frames)
    for f in range(frames):
        spectrum = np.maximum(inverse @ mel[:, f], 0)
        r = np.fft.irfft(spectrum ** 2 + noise, n=n_fft)[:order + 1]
        a = solve_toeplitz(r[:order], -r[1:order + 1])
        coefficients[f] = a
        log_rms[f] = 0.5 * np.log(r[0] + np.dot(a, r[1:order + 1]))
    save_file({"input.mel": log_mel, "input.audio": audio, "output.coefficients": coefficients.astype(np.float32),
               "output.log_rms": log_rms.astype(np.float32)},
              out("models", "linear_prediction.safetensors"), metadata={"order": str(order), "bits": str(bits), "config": "sr16k"})


# ---------------------------------------------------------------- WaveGlow

def waveglow_fixture():
    """A tiny WaveGlow in PyTorch float64, written from NVIDIA's glow.py equations
    (DESIGN.md section 6) without weight normalisation: 4 flows over groups of 4, 2 channels
    leaving before flow 2, coupling networks of 2 layers of 6 channels (kernel 3, dilations
    1 and 2, centred), 5 mel bands repeated to frames of 8 samples and smoothed by a centred
    3-tap convolution, then squeezed (channel c * group + g). Every weight is random, the
    end layers too, and each 1x1 convolution is a random orthogonal matrix plus noise.
    Saved in Parawave's layouts (convolution weights (K, Cout, Cin)): the parameters, the
    inputs, z, the loss's three parts per sample and every gradient."""
    import torch
    import torch.nn.functional as F
    from safetensors.numpy import save_file
    rng = np.random.RandomState(31)
    flows, group, every, early, L, R, K, C, hop, Ku, B, Fr, sigma = 4, 4, 2, 2, 2, 6, 3, 5, 8, 3, 2, 3, 1.0
    T = Fr * hop
    Tq = T // group
    P = {}

    def add(name, shape, scale):
        P[name] = (rng.uniform(-1, 1, size=shape) * scale).astype(np.float32)

    add("waveglow.upsample.weight", (Ku, C, C), 1 / np.sqrt(C * Ku)); add("waveglow.upsample.bias", (C,), 0.3)
    channels = []
    r = group
    for k in range(flows):
        if k % every == 0 and k > 0:
            r -= early
        channels.append(r)
        q, _ = np.linalg.qr(rng.randn(r, r))
        P[f"waveglow.convinv.{k}.weight"] = (q + 0.2 * rng.uniform(-1, 1, (r, r))).astype(np.float32)[None]
        h, w = r // 2, f"waveglow.WN.{k}"
        add(f"{w}.start.weight", (1, R, h), 1 / np.sqrt(h)); add(f"{w}.start.bias", (R,), 0.3)
        add(f"{w}.cond_layer.weight", (1, 2 * R * L, C * group), 1 / np.sqrt(C * group)); add(f"{w}.cond_layer.bias", (2 * R * L,), 0.3)
        for i in range(L):
            add(f"{w}.in_layers.{i}.weight", (K, 2 * R, R), 1 / np.sqrt(K * R)); add(f"{w}.in_layers.{i}.bias", (2 * R,), 0.3)
            width = 2 * R if i < L - 1 else R
            add(f"{w}.res_skip_layers.{i}.weight", (1, width, R), 1 / np.sqrt(R)); add(f"{w}.res_skip_layers.{i}.bias", (width,), 0.3)
        add(f"{w}.end.weight", (1, 2 * (r - h), R), 0.3 / np.sqrt(R)); add(f"{w}.end.bias", (2 * (r - h),), 0.1)
    audio = (0.5 * np.sin(np.arange(B * T) * 0.37) + 0.2 * rng.randn(B * T)).reshape(B, T).astype(np.float32)
    mel = rng.randn(B, C, Fr).astype(np.float32)
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in P.items()}

    def conv(x, name, dilation=1, bias=True):
        w = t[name + ".weight"].permute(1, 2, 0)              # (K, Cout, Cin) -> (Cout, Cin, K)
        k = w.shape[2]
        return F.conv1d(x, w, t[name + ".bias"] if bias else None, dilation=dilation, padding=(k - 1) // 2 * dilation)

    def wn(k, a, spect):
        w = f"waveglow.WN.{k}"
        x = conv(a, w + ".start")
        cond = conv(spect, w + ".cond_layer")
        output = 0
        for i in range(L):
            acts = conv(x, f"{w}.in_layers.{i}", dilation=2 ** i) + cond[:, i * 2 * R:(i + 1) * 2 * R]
            acts = torch.tanh(acts[:, :R]) * torch.sigmoid(acts[:, R:])
            rs = conv(acts, f"{w}.res_skip_layers.{i}")
            if i < L - 1:
                x = x + rs[:, :R]
                output = output + rs[:, R:]
            else:
                output = output + rs
        return conv(output, w + ".end")

    up = torch.tensor(mel, dtype=torch.float64).repeat_interleave(hop, dim=2)
    up = conv(up, "waveglow.upsample")
    spect = up.unfold(2, group, group).permute(0, 2, 1, 3).reshape(B, Tq, C * group).permute(0, 2, 1)
    x = torch.tensor(audio, dtype=torch.float64).unfold(1, group, group).permute(0, 2, 1)
    outputs, log_s_total, log_det_total = [], 0, 0
    for k in range(flows):
        if k % every == 0 and k > 0:
            outputs.append(x[:, :early])
            x = x[:, early:]
        W = t[f"waveglow.convinv.{k}.weight"][0]
        x = torch.einsum("ij,bjt->bit", W, x)
        log_det_total = log_det_total + B * Tq * torch.slogdet(W)[1]     # log|det W| (glow.py's logdet where det > 0)
        h = x.shape[1] // 2
        coupled = wn(k, x[:, :h], spect)
        log_s, bias = coupled[:, h:], coupled[:, :h]
        x = torch.cat([x[:, :h], torch.exp(log_s) * x[:, h:] + bias], 1)
        log_s_total = log_s_total + log_s.sum()
    outputs.append(x)
    z = torch.cat(outputs, 1)
    n = B * T
    gaussian = (z * z).sum() / (2 * sigma ** 2) / n
    loss = gaussian - log_s_total / n - log_det_total / n
    loss.backward()
    tensors = dict(P)
    tensors.update({"input.audio": audio, "input.mel": mel, "output.z": z.detach().numpy().astype(np.float32),
                    "output.loss": np.array([loss.item(), gaussian.item(), -log_s_total.item() / n, -log_det_total.item() / n],
                                            dtype=np.float32)})
    for k, v in t.items():
        tensors["grad." + k] = v.grad.numpy().astype(np.float32)
    save_file(tensors, out("models", "waveglow.safetensors"),
              metadata={"flows": str(flows), "group": str(group), "early_every": str(every), "early_size": str(early),
                        "layers": str(L), "channels": str(R), "kernel": str(K), "mels": str(C), "hop": str(hop),
                        "batch": str(B), "frames": str(Fr)})


GENERATORS = {
    "mel": mel_fixtures,
    "griffinlim": griffinlim_fixture,
    "npy": npy_fixtures,
    "audio": audio_fixtures,
    "dmol": dmol_fixtures,
    "dgauss": dgauss_fixtures,
    "safetensors": safetensors_fixtures,
    "stack": stack_fixture,
    "transposed_conv": transposed_conv_fixture,
    "teacher": teacher_fixture,
    "spectral": spectral_fixture,
    "quality": quality_fixture,
    "teacher_speakers": lambda: teacher_fixture(speakers=True),
    "pitch_predictor": pitch_predictor_fixture,
    "linear_prediction": linear_prediction_fixture,
    "waveglow": waveglow_fixture,
}


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description="Writes the golden fixtures under Tests/Fixtures.")
    parser.add_argument("only", nargs="*", metavar="GENERATOR",
                        help="generators to run, of: " + ", ".join(GENERATORS) + " (default: all of them)")
    args = parser.parse_args()
    unknown = [name for name in args.only if name not in GENERATORS]
    if unknown:
        parser.error(f"unknown generator {', '.join(unknown)}: choose from {', '.join(GENERATORS)}")
    warnings.filterwarnings("ignore", message="n_fft=.*is too large")
    for name in args.only or list(GENERATORS):
        GENERATORS[name]()
    print("fixtures written to", os.path.normpath(ROOT))
