import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// Autoregressive sampling from a teacher, one sample at a time for several utterances at
/// once, with per-layer queues of past layer inputs (Fast WaveNet, Paine et al. 2016).
///
/// Each layer keeps a ring of its last (K-1)d + 1 inputs, so a new sample costs per layer
/// one product with the layer's K taps side by side (2G x KR), the gate, and one product
/// with the skip and residual 1x1 weights stacked (S+R x G). The conditioning of every
/// layer is computed ahead in blocks of samples with one large product (all layers'
/// conditioning weights stacked), so the per-sample work touches only the recurrent part.
/// All state is (batch, channels) with an utterance's vector contiguous, allocated once.
public final class TeacherGenerator: @unchecked Sendable {
    public let teacher: Teacher
    public let batch: Int
    let L: Int, K: Int, R: Int, G: Int, S: Int, C: Int, M: Int, hop: Int
    /// Samples per block of precomputed conditioning.
    let blockLength: Int

    // Packed weights, then state: all allocated once, freed in deinit.
    let inputWeight, inputBias: UnsafeMutablePointer<Float>
    /// (L, 2G, K*R): tap k's (2G x R) matrix in columns [kR, (k+1)R).
    let dilated: UnsafeMutablePointer<Float>
    /// (L*2G, Cc) every layer's conditioning weights stacked, and (L*2G) the dilated biases.
    let condition, conditionBias: UnsafeMutablePointer<Float>
    /// (L, S+R, G) skip then residual weights, and (L, S+R) biases.
    let skipResidual, skipResidualBias: UnsafeMutablePointer<Float>
    let head1, head1Bias, head2, head2Bias: UnsafeMutablePointer<Float>
    /// Per layer a ring of (K-1)d + 1 slots of (B, R).
    let rings: [UnsafeMutablePointer<Float>]
    let ringSlots: [Int]
    let gathered, preGate, gated, skipResidualOut, skip, hiddenA, hiddenB, params, current: UnsafeMutablePointer<Float>
    /// Conditioning of the current block: per utterance (blockLength, L*2G).
    let conditionBlock: UnsafeMutablePointer<Float>
    private var allocations: [(UnsafeMutablePointer<Float>, Int)] = []

    deinit { for (p, _) in allocations { p.deallocate() } }

    /// `blockFrames`: mel frames of conditioning computed ahead at a time (default 2048 samples' worth).
    public init(teacher: Teacher, batch: Int, blockFrames: Int? = nil) {
        precondition(batch >= 1, "batch must be at least 1")
        self.teacher = teacher
        self.batch = batch
        let c = teacher.config.stack
        L = c.layers; K = c.kernelSize; R = c.residualChannels; G = c.gatedChannels; S = c.skipChannels
        C = c.conditionChannels; M = teacher.config.mixtures; hop = c.hop
        blockLength = (blockFrames ?? max(1, 2048 / c.hop)) * c.hop
        let store = teacher.store, stack = teacher.stack
        var allocations: [(UnsafeMutablePointer<Float>, Int)] = []
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            p.initialize(repeating: 0, count: max(count, 1))
            allocations.append((p, count))
            return p
        }
        func copy(_ e: ParameterStore.Entry) -> UnsafeMutablePointer<Float> {
            let p = buffer(e.count)
            p.update(from: store.value(e), count: e.count)
            return p
        }
        inputWeight = copy(stack.inputWeight)
        inputBias = copy(stack.inputBias)
        let H = 2 * G, SR = S + R
        dilated = buffer(L * H * K * R)
        condition = buffer(L * H * C)
        conditionBias = buffer(L * H)
        skipResidual = buffer(L * SR * G)
        skipResidualBias = buffer(L * SR)
        for (l, layer) in stack.layers.enumerated() {
            let w = store.value(layer.dilatedWeight)
            for k in 0..<K {
                for o in 0..<H {
                    for i in 0..<R { dilated[((l * H) + o) * K * R + k * R + i] = w[(k * H + o) * R + i] }
                }
            }
            (condition + l * H * C).update(from: store.value(layer.conditionWeight), count: H * C)
            (conditionBias + l * H).update(from: store.value(layer.dilatedBias), count: H)
            (skipResidual + l * SR * G).update(from: store.value(layer.skipWeight), count: S * G)
            (skipResidual + l * SR * G + S * G).update(from: store.value(layer.residualWeight), count: R * G)
            (skipResidualBias + l * SR).update(from: store.value(layer.skipBias), count: S)
            (skipResidualBias + l * SR + S).update(from: store.value(layer.residualBias), count: R)
        }
        head1 = copy(teacher.head1Weight); head1Bias = copy(teacher.head1Bias)
        head2 = copy(teacher.head2Weight); head2Bias = copy(teacher.head2Bias)
        ringSlots = (0..<L).map { (c.kernelSize - 1) * c.dilation($0) + 1 }
        rings = ringSlots.map { buffer($0 * batch * c.residualChannels) }
        gathered = buffer(batch * K * R)
        preGate = buffer(batch * H)
        gated = buffer(batch * G)
        skipResidualOut = buffer(batch * SR)
        skip = buffer(batch * S)
        hiddenA = buffer(batch * S)
        hiddenB = buffer(batch * S)
        params = buffer(batch * 3 * M)
        current = buffer(batch * R)
        conditionBlock = buffer(batch * blockLength * L * H)
        self.allocations = allocations
    }

    /// Samples audio for up to `batch` utterances from their raw log-mels (Cc, F_i); each
    /// result has F_i * hop samples. `temperature` scales the logistic's scale.
    public func generate(mels: [Matrix], temperature: Float = 1, seed: UInt64,
                         progress: ((Int, Int) -> Void)? = nil) -> [[Float]] {
        var generator = SeededGenerator(seed: seed)
        return run(mels: mels, forced: nil, temperature: temperature, generator: &generator, record: nil, progress: progress)
    }

    /// Teacher forcing: feeds `audio` (the previous true sample at every step) and hands the
    /// mixture parameters (3M values, pi then mu then log s) of every utterance and time to
    /// `record(utterance, t, params)`. This is what the parallel pass computes.
    public func teacherForced(mels: [Matrix], audio: [[Float]], record: @escaping (Int, Int, UnsafePointer<Float>) -> Void) {
        var generator = SeededGenerator(seed: 0)
        _ = run(mels: mels, forced: audio, temperature: 1, generator: &generator, record: record, progress: nil)
    }

    func run(mels: [Matrix], forced: [[Float]]?, temperature: Float, generator: inout SeededGenerator,
             record: ((Int, Int, UnsafePointer<Float>) -> Void)?, progress: ((Int, Int) -> Void)?) -> [[Float]] {
        precondition(!mels.isEmpty && mels.count <= batch, "between 1 and \(batch) utterances")
        for mel in mels { precondition(mel.rows == C, "mel has \(mel.rows) bands, the teacher \(C)") }
        let B = mels.count
        let frames = mels.map(\.columns)
        let T = (frames.max() ?? 0) * hop
        var outputs = frames.map { [Float](repeating: 0, count: $0 * hop) }
        // Normalised mels, padded with zeros to the longest (as the parallel pass pads).
        let maxFrames = frames.max() ?? 0
        var normalised = [Float](repeating: 0, count: B * C * maxFrames)
        for (b, mel) in mels.enumerated() {
            for c in 0..<C {
                let mean = teacher.melMean[c], inv = 1 / teacher.melStd[c]
                for f in 0..<maxFrames {
                    normalised[(b * C + c) * maxFrames + f] = f < mel.columns ? (mel[c, f] - mean) * inv : 0
                }
            }
        }
        for l in 0..<L { rings[l].update(repeating: 0, count: ringSlots[l] * batch * R) }
        var previous = [Float](repeating: 0, count: B)
        let scale = Float(0.5.squareRoot())
        let H = 2 * G, LH = L * 2 * G
        var blockStart = -blockLength
        for t in 0..<T {
            if t >= blockStart + blockLength {
                blockStart = t
                prepareConditioning(normalised: normalised, utterances: B, frames: maxFrames, start: t)
            }
            let offset = t - blockStart
            // Input 1x1 convolution on the previous sample.
            do {
                for b in 0..<B {
                    let x = previous[b]
                    for r in 0..<R { current[b * R + r] = inputWeight[r] * x + inputBias[r] }
                }
                skip.update(repeating: 0, count: B * S)
                for l in 0..<L {
                    let slots = ringSlots[l], d = teacher.stack.config.dilation(l)
                    let ring = rings[l]
                    // Store this layer's input at slot t mod slots, then gather the K taps.
                    (ring + (t % slots) * B * R).update(from: current, count: B * R)
                    for k in 0..<K {
                        let back = (K - 1 - k) * d
                        let source = ring + (((t - back) % slots + slots) % slots) * B * R
                        for b in 0..<B { (gathered + b * K * R + k * R).update(from: source + b * R, count: R) }
                    }
                    for b in 0..<B {
                        (preGate + b * H).update(from: conditionBlock + (b * blockLength + offset) * LH + l * H, count: H)
                    }
                    MatVec.accumulate(y: preGate, ldy: H, w: dilated + l * H * K * R, m: H, n: K * R, x: gathered, ldx: K * R, batch: B)
                    for b in 0..<B { GatedUnit.forwardVector(out: gated + b * G, inp: preGate + b * H, channels: G) }
                    let SR = S + R
                    for b in 0..<B { (skipResidualOut + b * SR).update(from: skipResidualBias + l * SR, count: SR) }
                    MatVec.accumulate(y: skipResidualOut, ldy: SR, w: skipResidual + l * SR * G, m: SR, n: G, x: gated, ldx: G, batch: B)
                    for b in 0..<B {
                        let out = skipResidualOut + b * SR
                        for s in 0..<S { skip[b * S + s] += out[s] }
                        for r in 0..<R { current[b * R + r] = (current[b * R + r] + out[S + r]) * scale }
                    }
                }
                // Head: relu -> 1x1 -> relu -> 1x1.
                for i in 0..<(B * S) { hiddenA[i] = max(skip[i], 0) }
                for b in 0..<B { (hiddenB + b * S).update(from: head1Bias, count: S) }
                MatVec.accumulate(y: hiddenB, ldy: S, w: head1, m: S, n: S, x: hiddenA, ldx: S, batch: B)
                for i in 0..<(B * S) { hiddenB[i] = max(hiddenB[i], 0) }
                for b in 0..<B { (params + b * 3 * M).update(from: head2Bias, count: 3 * M) }
                MatVec.accumulate(y: params, ldy: 3 * M, w: head2, m: 3 * M, n: S, x: hiddenB, ldx: S, batch: B)
                for b in 0..<B {
                    let theta = UnsafePointer(params + b * 3 * M)
                    if let record, t < outputs[b].count { record(b, t, theta) }
                    let x: Float
                    if let forced {
                        x = t < forced[b].count ? forced[b][t] : 0
                    } else {
                        x = LogisticMixture.draw(theta, stride: 1, mixtures: M, logScaleMin: teacher.config.logScaleMin,
                                                 temperature: temperature, generator: &generator)
                    }
                    if t < outputs[b].count { outputs[b][t] = x }
                    previous[b] = x
                }
            }
            if let progress, (t + 1) % hop == 0 || t + 1 == T { progress(t + 1, T) }
        }
        return outputs
    }

    /// Fills `conditionBlock` for samples [start, start + blockLength): every layer's
    /// conditioning product plus its dilated convolution's bias, per utterance (time, L*2G).
    func prepareConditioning(normalised: [Float], utterances B: Int, frames F: Int, start: Int) {
        let stack = teacher.stack, store = teacher.store
        let LH = L * 2 * G
        let conv = stack.upsample
        let halo = (conv.padding + hop - 1) / hop + 1
        let f0 = start / hop, f1 = min(F, (start + blockLength) / hop)
        guard f1 > f0 else { return }
        let lo = max(0, f0 - halo), hi = min(F, f1 + halo), n = hi - lo
        var window = [Float](repeating: 0, count: C * n)
        var repeated = [Float](repeating: 0, count: C * n * hop)
        var upsampled = repeated
        for b in 0..<B {
            for c in 0..<C {
                for f in 0..<n { window[c * n + f] = normalised[(b * C + c) * F + lo + f] }
            }
            window.withUnsafeBufferPointer { w in
                repeated.withUnsafeMutableBufferPointer { RepeatUpsample.forward(out: $0.baseAddress!, inp: w.baseAddress!, rows: C, frames: n, hop: hop) }
            }
            conv.forward(out: &upsampled, inp: repeated, weight: store.value(stack.upsampleWeight), bias: store.value(stack.upsampleBias),
                         batch: 1, length: n * hop)
            let first = (f0 - lo) * hop, count = (f1 - f0) * hop
            do {
                let out = conditionBlock + b * blockLength * LH
                for t in 0..<count { (out + t * LH).update(from: conditionBias, count: LH) }
                upsampled.withUnsafeBufferPointer { u in
                    // (time, L*2G) += c_up^T (time, Cc) * W^T (Cc, L*2G)
                    BLAS.sgemm(transposeA: true, transposeB: true, m: count, n: LH, k: C, a: u.baseAddress! + first, lda: n * hop,
                               b: condition, ldb: C, beta: 1, c: out, ldc: LH)
                }
            }
        }
    }
}
