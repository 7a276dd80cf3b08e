import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import Synchronization

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
    /// (L*2G, Cc) every layer's conditioning weights stacked, and per utterance (B, L*2G) the
    /// layers' biases of h (the dilated convolutions' biases, plus the speaker's term).
    let condition, conditionBias: UnsafeMutablePointer<Float>
    /// (L, S+R, G) skip then residual weights, and (L, S+R) biases.
    let skipResidual, skipResidualBias: UnsafeMutablePointer<Float>
    let head1, head1Bias, head2, head2Bias: UnsafeMutablePointer<Float>
    /// Per layer a ring of (K-1)d + 1 slots of (B, R).
    let rings: [UnsafeMutablePointer<Float>]
    let ringSlots: [Int]
    let preGate, gated, skipResidualOut, skip, hiddenA, hiddenB, params, current: UnsafeMutablePointer<Float>
    /// Conditioning of the current block: per utterance (blockLength, L*2G), and the
    /// upsampled mel it comes from, (B, Cc, blockLength).
    let conditionBlock, upsampledBlock: UnsafeMutablePointer<Float>
    /// Workers of the per-sample loop (1 or 2).
    public let threads: Int
    private var allocations: [(UnsafeMutablePointer<Float>, Int)] = []

    deinit { for (p, _) in allocations { p.deallocate() } }

    /// `blockFrames`: mel frames of conditioning computed ahead at a time (default 2048 samples'
    /// worth); `threads`: workers of the per-sample loop (default: 2 when there are 2 cores).
    public init(teacher: Teacher, batch: Int, blockFrames: Int? = nil, threads: Int? = nil) {
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
        conditionBias = buffer(batch * L * H)
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
            (skipResidual + l * SR * G).update(from: store.value(layer.skipWeight), count: S * G)
            (skipResidual + l * SR * G + S * G).update(from: store.value(layer.residualWeight), count: R * G)
            (skipResidualBias + l * SR).update(from: store.value(layer.skipBias), count: S)
            (skipResidualBias + l * SR + S).update(from: store.value(layer.residualBias), count: R)
        }
        head1 = copy(teacher.head.firstWeight); head1Bias = copy(teacher.head.firstBias)
        head2 = copy(teacher.head.secondWeight); head2Bias = copy(teacher.head.secondBias)
        ringSlots = (0..<L).map { (c.kernelSize - 1) * c.dilation($0) + 1 }
        rings = ringSlots.map { buffer($0 * batch * c.residualChannels) }
        preGate = buffer(batch * H)
        gated = buffer(batch * G)
        skipResidualOut = buffer(batch * SR)
        skip = buffer(batch * S)
        hiddenA = buffer(batch * S)
        hiddenB = buffer(batch * S)
        params = buffer(batch * 3 * M)
        current = buffer(batch * R)
        conditionBlock = buffer(batch * blockLength * L * H)
        upsampledBlock = buffer(batch * C * blockLength)
        self.threads = max(1, min(threads ?? Parallel.threads, 2))
        self.allocations = allocations
    }

    /// Samples audio for up to `batch` utterances from their raw log-mels (Cc, F_i); each
    /// result has F_i * hop samples. `temperature` scales the logistic's scale.
    /// A speaker-conditioned teacher needs `speakers`, one row of its table per utterance.
    public func generate(mels: [Matrix], speakers: [Int]? = nil, temperature: Float = 1, seed: UInt64,
                         progress: ((Int, Int) -> Void)? = nil) -> [[Float]] {
        var generator = SeededGenerator(seed: seed)
        return run(mels: mels, speakers: speakers, forced: nil, temperature: temperature, generator: &generator, record: nil, progress: progress)
    }

    /// Teacher forcing: feeds `audio` (the previous true sample at every step) and hands the
    /// mixture parameters (3M values, pi then mu then log s) of every utterance and time to
    /// `record(utterance, t, params)`. This is what the parallel pass computes.
    public func teacherForced(mels: [Matrix], audio: [[Float]], speakers: [Int]? = nil,
                              record: @escaping (Int, Int, UnsafePointer<Float>) -> Void) {
        var generator = SeededGenerator(seed: 0)
        _ = run(mels: mels, speakers: speakers, forced: audio, temperature: 1, generator: &generator, record: record, progress: nil)
    }

    func run(mels: [Matrix], speakers: [Int]?, forced: [[Float]]?, temperature: Float, generator: inout SeededGenerator,
             record: ((Int, Int, UnsafePointer<Float>) -> Void)?, progress: ((Int, Int) -> Void)?) -> [[Float]] {
        precondition(!mels.isEmpty && mels.count <= batch, "between 1 and \(batch) utterances")
        for mel in mels { precondition(mel.rows == C, "mel has \(mel.rows) bands, the teacher \(C)") }
        let B = mels.count
        setBiases(utterances: B, speakers: speakers)
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
        current.update(repeating: 0, count: batch * R)
        let previous = UnsafeMutablePointer<Float>.allocate(capacity: B)
        previous.initialize(repeating: 0, count: B)
        defer { previous.deallocate() }
        let scale = Float(0.5.squareRoot())
        let H = 2 * G, LH = L * 2 * G, SR = S + R, KR = K * R
        let dilations = (0..<L).map { teacher.stack.config.dilation($0) }
        let workers = max(1, min(threads, 2))
        let barrier = SpinBarrier(parties: workers)
        // Rows split between the workers at multiples of 4 (the matrix kernel's row block),
        // so every row is summed in the same order whatever the split.
        func share(_ n: Int, _ j: Int) -> Range<Int> {
            guard workers > 1 else { return 0..<n }
            let mid = min(n, (n / 2 + 3) / 4 * 4)
            return j == 0 ? 0..<mid : mid..<n
        }

        // Worker j runs the same loop over a block's samples in lockstep; worker 0 also does the
        // per-sample input convolution, the head and the draw. Barriers: after the input (the
        // layer input is complete), after the gate (z complete), after the skip/residual rows.
        func work(_ j: Int, block blockStart: Int, _ generator: inout SeededGenerator) {
            let channels = share(G, j), rows = share(SR, j), inputRows = share(R, j)
            for t in blockStart..<min(T, blockStart + blockLength) {
                let offset = t - blockStart
                if j == 0 {
                    for b in 0..<B {
                        let x = previous[b]
                        for r in 0..<R { current[b * R + r] = inputWeight[r] * x + inputBias[r] }
                    }
                    skip.update(repeating: 0, count: B * S)
                }
                barrier.wait()
                for l in 0..<L {
                    let slots = ringSlots[l], ring = rings[l], d = dilations[l]
                    // h rows of this worker's gate channels, tanh half and sigmoid half.
                    for half in [0, G] {
                        let r0 = half + channels.lowerBound, n = channels.count
                        guard n > 0 else { continue }
                        for b in 0..<B {
                            (preGate + b * H + r0).update(from: conditionBlock + (b * blockLength + offset) * LH + l * H + r0, count: n)
                        }
                        for k in 0..<K {
                            let back = (K - 1 - k) * d
                            let x = back == 0 ? current : ring + ((t - back) % slots + slots) % slots * B * R
                            MatVec.accumulate(y: preGate + r0, ldy: H, w: dilated + (l * H + r0) * KR + k * R, m: n, n: R, ldw: KR,
                                              x: x, ldx: R, batch: B)
                        }
                    }
                    for b in 0..<B {
                        GatedUnit.forwardVector(out: gated + b * G + channels.lowerBound, tanhInput: preGate + b * H + channels.lowerBound,
                                                sigmoidInput: preGate + b * H + G + channels.lowerBound, count: channels.count)
                        // This layer's input joins its ring (slot t mod slots) for later samples.
                        (ring + (t % slots) * B * R + b * R + inputRows.lowerBound)
                            .update(from: current + b * R + inputRows.lowerBound, count: inputRows.count)
                    }
                    barrier.wait()
                    if !rows.isEmpty {
                        for b in 0..<B {
                            (skipResidualOut + b * SR + rows.lowerBound).update(from: skipResidualBias + l * SR + rows.lowerBound, count: rows.count)
                        }
                        MatVec.accumulate(y: skipResidualOut + rows.lowerBound, ldy: SR, w: skipResidual + (l * SR + rows.lowerBound) * G,
                                          m: rows.count, n: G, x: gated, ldx: G, batch: B)
                        for b in 0..<B {
                            let out = skipResidualOut + b * SR
                            for row in rows {
                                if row < S {
                                    skip[b * S + row] += out[row]
                                } else {
                                    current[b * R + row - S] = (current[b * R + row - S] + out[row]) * scale
                                }
                            }
                        }
                    }
                    barrier.wait()
                }
                guard j == 0 else { continue }
                // Head: relu -> 1x1 -> relu -> 1x1, then the draw.
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
                if let progress, (t + 1) % hop == 0 || t + 1 == T { progress(t + 1, T) }
            }
        }

        // Per block: the conditioning on this thread with BLAS and the toolkit's own threads
        // (the helper sleeps meanwhile), then the per-sample loop on both workers.
        if workers > 1 {
            let start = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
            let helper = Thread {
                var unused = SeededGenerator(seed: 0)
                for block in stride(from: 0, to: T, by: self.blockLength) {
                    start.wait()
                    work(1, block: block, &unused)
                    finished.signal()
                }
            }
            helper.stackSize = 1 << 20
            helper.start()
            for block in stride(from: 0, to: T, by: blockLength) {
                prepareConditioning(normalised: normalised, utterances: B, frames: maxFrames, start: block)
                start.signal()
                work(0, block: block, &generator)
                finished.wait()
            }
        } else {
            for block in stride(from: 0, to: T, by: blockLength) {
                prepareConditioning(normalised: normalised, utterances: B, frames: maxFrames, start: block)
                work(0, block: block, &generator)
            }
        }
        return outputs
    }

    /// Every layer's bias of h per utterance, from the stack (with the speakers' terms).
    func setBiases(utterances B: Int, speakers: [Int]?) {
        let H = 2 * G, LH = L * H
        var embeddings = [Float](repeating: 0, count: B * teacher.config.stack.speakerChannels)
        SpeakerTable.embed(speakers, table: teacher.speakerTable, batch: B, store: teacher.store, into: &embeddings, model: "teacher")
        var layerBias = [Float](repeating: 0, count: B * H)
        embeddings.withUnsafeBufferPointer { e in
            layerBias.withUnsafeMutableBufferPointer { bias in
                for l in 0..<L {
                    teacher.stack.gateBias(l, speaker: e.isEmpty ? nil : e.baseAddress!, batch: B, store: teacher.store, into: bias.baseAddress!)
                    for b in 0..<B { (conditionBias + b * LH + l * H).update(from: bias.baseAddress! + b * H, count: H) }
                }
            }
        }
    }

    /// Fills `conditionBlock` for samples [start, start + blockLength) from the normalised mels.
    func prepareConditioning(normalised: [Float], utterances B: Int, frames F: Int, start: Int) {
        conditionRows(0..<upsampleBlock(normalised: normalised, utterances: B, frames: F, start: start), utterances: B)
    }

    /// Upsampled, normalised conditioning (B, Cc, blockLength) for samples
    /// [start, start + blockLength); returns how many samples of it are inside the mels.
    func upsampleBlock(normalised: [Float], utterances B: Int, frames F: Int, start: Int) -> Int {
        let stack = teacher.stack, store = teacher.store
        // Frames beyond the block whose conditioning reaches into it: the window around the
        // block is upsampled whole and its middle kept, equal to the full-length pass there.
        let halo = (stack.config.upsampleReach + hop - 1) / hop + 1
        let f0 = start / hop, f1 = min(F, (start + blockLength) / hop)
        guard f1 > f0 else { return 0 }
        let lo = max(0, f0 - halo), hi = min(F, f1 + halo), n = hi - lo
        var window = [Float](repeating: 0, count: C * n)
        var repeated = [Float](repeating: 0, count: stack.transposedUpsample == nil ? C * n * hop : 0)
        var upsampled = [Float](repeating: 0, count: C * n * hop)
        let first = (f0 - lo) * hop, count = (f1 - f0) * hop
        for b in 0..<B {
            for c in 0..<C {
                for f in 0..<n { window[c * n + f] = normalised[(b * C + c) * F + lo + f] }
            }
            upsampled.withUnsafeMutableBufferPointer { u in
                repeated.withUnsafeMutableBufferPointer { r in
                    stack.upsample(mel: window, batch: 1, frames: n, into: u.baseAddress!, repeated: r.baseAddress, store: store)
                }
            }
            for c in 0..<C {
                upsampled.withUnsafeBufferPointer { u in
                    (upsampledBlock + (b * C + c) * blockLength).update(from: u.baseAddress! + c * n * hop + first, count: count)
                }
            }
        }
        return count
    }

    /// Rows `times` of `conditionBlock`: every layer's conditioning product plus its dilated
    /// convolution's bias, per utterance (time, L*2G) = c_up^T (time, Cc) W^T (Cc, L*2G).
    func conditionRows(_ times: Range<Int>, utterances B: Int) {
        guard !times.isEmpty else { return }
        let LH = L * 2 * G
        for b in 0..<B {
            let out = conditionBlock + (b * blockLength + times.lowerBound) * LH
            for t in 0..<times.count { (out + t * LH).update(from: conditionBias + b * LH, count: LH) }
            BLAS.sgemm(transposeA: true, transposeB: true, m: times.count, n: LH, k: C,
                       a: upsampledBlock + b * C * blockLength + times.lowerBound, lda: blockLength,
                       b: condition, ldb: C, beta: 1, c: out, ldc: LH)
        }
    }
}

/// A spinning barrier for two threads: per-sample generation meets 2L + 1 times per sample,
/// far too often for a sleeping primitive.
final class SpinBarrier: @unchecked Sendable {
    let parties: Int
    private let arrived = Atomic<Int>(0)
    private let phase = Atomic<Int>(0)

    init(parties: Int) { self.parties = parties }

    func wait() {
        guard parties > 1 else { return }
        let p = phase.load(ordering: .acquiring)
        if arrived.add(1, ordering: .acquiringAndReleasing).newValue == parties {
            arrived.store(0, ordering: .relaxed)
            phase.store(p &+ 1, ordering: .releasing)
        } else {
            while phase.load(ordering: .acquiring) == p {}
        }
    }
}
