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
///
/// Every layer's gate channels are in two groups. A group has its own rows of h, its gate,
/// and its skip/residual product over its own channels only (a partial sum of every output
/// row); the two partial sums are added in a fixed order, so the result does not depend on
/// how many workers run. With two workers each owns one group and its own copy of the
/// residual stream (to which it adds both partial sums), so they meet L + 1 times per sample.
public final class TeacherGenerator: @unchecked Sendable {
    public let teacher: Teacher
    public let batch: Int
    let L: Int, K: Int, R: Int, G: Int, S: Int, C: Int, M: Int, hop: Int
    /// The head's output channels per sample (`TeacherConfig.outputChannels`).
    let width: Int
    /// Samples per block of precomputed conditioning.
    let blockLength: Int
    /// Positions of conditioning per frame: with the nearest upsampler (and hop >= its kernel)
    /// c_up is constant inside a frame but for the kernel's reach at its edges, so only
    /// `upsampleKernel` positions per frame are computed (see
    /// `WaveNetStack.representatives`); otherwise every sample. And the position each sample
    /// offset of a frame reads.
    let positions: Int
    let positionOfOffset: [Int]
    /// Positions per block: blockLength / hop * positions.
    var blockPositions: Int { blockLength / hop * positions }
    /// Workers of the per-sample loop (1 or 2).
    public let threads: Int
    /// How the per-sample weights (taps, skip/residual and head) are stored: as asked, except
    /// that a teacher with a weight beyond Float16's range (65504) keeps Float32.
    public let precision: PackedMatrix.Precision
    /// The groups of gate channels, and the groups each worker owns.
    let channels: [Range<Int>]
    let groupsOfWorker: [[Int]]

    // Weights, then state: all allocated once.
    let inputWeight, inputBias: [Float]
    /// Per layer and group: the rows of h for the group's channels (tanh rows, then sigmoid
    /// rows) with tap k's columns in [kR, (k+1)R): (2n x KR).
    let dilated: [[PackedMatrix]]
    /// Per layer and group: the skip and residual weights stacked, restricted to the
    /// group's channels: (S+R x n).
    let skipResidual: [[PackedMatrix]]
    /// (L, R) residual biases, and the sum over layers of the skip biases (S).
    let residualBias, skipBiasSum: UnsafeMutablePointer<Float>
    /// (L*2G, Cc) every layer's conditioning weights stacked, rows in the order of h's rows
    /// as the groups hold them (group 0's tanh rows, its sigmoid rows, then group 1's), and
    /// per utterance (B, L*2G) the layers' biases of h in the same order (the dilated
    /// convolutions' biases, plus the speaker's term).
    let condition, conditionBias: UnsafeMutablePointer<Float>
    /// For each position of that order, the row of h it holds.
    let rowOrder: [Int]
    /// Per layer and group, with source conditioning: the source weights of the group's rows
    /// of h in the group's order, (2n); empty without it.
    let sourceRows: [[UnsafeMutablePointer<Float>]]
    let head1, head2: PackedMatrix
    let head1Bias, head2Bias: [Float]
    /// Per worker: per layer a ring of (K-1)d + 1 slots of (B, R), the residual stream
    /// (B, R) and the inputs of the taps. Per group: h and z for its channels, (B, 2n) and
    /// (B, n), and the partial skip/residual sums by layer parity, (2, B, S+R).
    let rings: [[UnsafeMutablePointer<Float>]]
    let ringSlots: [Int]
    let currents, preGates, gateds, partials: [UnsafeMutablePointer<Float>]
    let taps: [UnsafeMutablePointer<UnsafePointer<Float>>]
    let skip, hiddenA, hiddenB, params: UnsafeMutablePointer<Float>
    /// Conditioning of a block: per utterance (blockPositions, L*2G); two of them when one
    /// worker runs and a spare core computes the next block meanwhile. And the upsampled mel
    /// it comes from, (B, Cc, blockPositions).
    let conditionBlocks: [UnsafeMutablePointer<Float>]
    let upsampledBlock: UnsafeMutablePointer<Float>
    private let allocations: [UnsafeMutablePointer<Float>]
    private let tapAllocations: [UnsafeMutablePointer<UnsafePointer<Float>>]

    deinit {
        for p in allocations { p.deallocate() }
        for p in tapAllocations { p.deallocate() }
    }

    /// `blockFrames`: mel frames of conditioning computed ahead at a time (default 1024 samples'
    /// worth); `threads`: workers of the per-sample loop (default: 2 when there are 2 cores; one
    /// worker leaves the other core to compute the next block's conditioning);
    /// `precision`: how the per-sample weights are stored. `.single` reproduces the parallel
    /// pass's mixture parameters to 1e-5; `.half` halves the bytes every sample streams.
    public init(teacher: Teacher, batch: Int, blockFrames: Int? = nil, threads: Int? = nil,
                precision: PackedMatrix.Precision = .single) {
        precondition(batch >= 1, "batch must be at least 1")
        self.teacher = teacher
        self.batch = batch
        let finite = Float(Float16.greatestFiniteMagnitude)
        let precision = precision == .half && UnsafeBufferPointer(start: teacher.store.values, count: teacher.store.count).allSatisfy({ abs($0) <= finite }) ? PackedMatrix.Precision.half : .single
        self.precision = precision
        let c = teacher.config.stack
        L = c.layers; K = c.kernelSize; R = c.residualChannels; G = c.gateOutChannels; S = c.skipChannels
        C = c.conditionChannels; M = teacher.config.mixtures; hop = c.hop; width = teacher.config.outputChannels
        blockLength = (blockFrames ?? max(1, 1024 / c.hop)) * c.hop
        let frameRate = c.conditioningAtFrameRate
        positions = frameRate ? c.upsampleKernel : c.hop
        positionOfOffset = frameRate ? teacher.stack.representativeOfOffset : Array(0..<c.hop)
        let blockPositions = blockLength / c.hop * positions
        let G = c.gateOutChannels
        // Two groups split at a multiple of 8 where possible, so their rows fill whole panels.
        let mid = min(G - 1, max(1, (G / 2 + 7) / 8 * 8))
        let channels = G < 2 ? [0..<G] : [0..<mid, mid..<G]
        self.channels = channels
        let workers = max(1, min(threads ?? Parallel.threads, channels.count))
        self.threads = workers
        groupsOfWorker = workers == 1 ? [Array(channels.indices)] : [[0], [1]]
        let store = teacher.store, stack = teacher.stack
        let H = 2 * G, SR = S + R, KR = K * R, L = c.layers, K = c.kernelSize, R = c.residualChannels, S = c.skipChannels, C = c.conditionChannels
        rowOrder = channels.flatMap { Array($0) + $0.map { G + $0 } }

        var allocations: [UnsafeMutablePointer<Float>] = []
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            p.initialize(repeating: 0, count: max(count, 1))
            allocations.append(p)
            return p
        }
        inputWeight = Array(UnsafeBufferPointer(start: store.value(stack.inputWeight), count: R))
        inputBias = Array(UnsafeBufferPointer(start: store.value(stack.inputBias), count: R))
        condition = buffer(L * H * C)
        conditionBias = buffer(batch * L * H)
        residualBias = buffer(L * R)
        skipBiasSum = buffer(S)
        var dilated: [[PackedMatrix]] = [], skipResidual: [[PackedMatrix]] = []
        let order = rowOrder
        for (l, layer) in stack.layers.enumerated() {
            let w = store.value(layer.dilatedWeight)   // (K, 2G, R)
            dilated.append(channels.map { range in
                let n = range.count
                return PackedMatrix(rows: 2 * n, columns: KR, precision: precision) { o, i in
                    let row = o < n ? range.lowerBound + o : G + range.lowerBound + o - n
                    return w[(i / R * H + row) * R + i % R]
                }
            })
            let skipW = store.value(layer.skipWeight), residualW = store.value(layer.residualWeight)
            skipResidual.append(channels.map { range in
                PackedMatrix(rows: SR, columns: range.count, precision: precision) { o, i in
                    o < S ? skipW[o * G + range.lowerBound + i] : residualW[(o - S) * G + range.lowerBound + i]
                }
            })
            let conditionW = store.value(layer.conditionWeight)
            for (position, row) in order.enumerated() {
                (condition + (l * H + position) * C).update(from: conditionW + row * C, count: C)
            }
            (residualBias + l * R).update(from: store.value(layer.residualBias), count: R)
            let skipB = store.value(layer.skipBias)
            for i in 0..<S { skipBiasSum[i] += skipB[i] }
        }
        self.dilated = dilated
        self.skipResidual = skipResidual
        sourceRows = c.sourceChannels == 0 ? [] : stack.layers.map { layer in
            let w = store.value(layer.sourceWeight!)   // (2G, 1)
            return channels.map { range in
                let rows = buffer(2 * range.count)
                for (o, channel) in range.enumerated() { rows[o] = w[channel]; rows[range.count + o] = w[G + channel] }
                return rows
            }
        }
        head1 = PackedMatrix(rows: S, columns: S, precision: precision, values: store.value(teacher.head.firstWeight))
        head2 = PackedMatrix(rows: width, columns: S, precision: precision, values: store.value(teacher.head.secondWeight))
        head1Bias = Array(UnsafeBufferPointer(start: store.value(teacher.head.firstBias), count: S))
        head2Bias = Array(UnsafeBufferPointer(start: store.value(teacher.head.secondBias), count: width))
        ringSlots = (0..<L).map { (K - 1) * c.dilation($0) + 1 }
        let slots = ringSlots
        rings = (0..<workers).map { _ in slots.map { buffer($0 * batch * R) } }
        currents = (0..<workers).map { _ in buffer(batch * R) }
        preGates = channels.map { buffer(batch * 2 * $0.count) }
        gateds = channels.map { buffer(batch * $0.count) }
        partials = channels.map { _ in buffer(2 * batch * SR) }
        skip = buffer(batch * S)
        hiddenA = buffer(batch * S)
        hiddenB = buffer(batch * S)
        params = buffer(batch * width)
        let blockValues = batch * blockPositions * L * H
        conditionBlocks = (0..<(workers == 1 && Parallel.threads > 1 ? 2 : 1)).map { _ in buffer(blockValues) }
        upsampledBlock = buffer(batch * C * blockPositions)
        let taps = (0..<workers).map { _ in UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: K) }
        self.taps = taps
        tapAllocations = taps
        self.allocations = allocations
    }

    /// Bytes of weights every sample reads.
    public var bytesPerSample: Int {
        (dilated.joined().map(\.bytes) + skipResidual.joined().map(\.bytes)).reduce(0, +) + head1.bytes + head2.bytes
    }

    /// Samples audio for up to `batch` utterances from their raw log-mels (Cc, F_i); each
    /// result has F_i * hop samples. `temperature` scales the logistic's scale.
    /// A speaker-conditioned teacher needs `speakers`, one row of its table per utterance, and
    /// a source-conditioned one `sources`, one `Teacher.sourceSignal` per utterance.
    /// `record(utterance, t, params, x)` receives every step's mixture parameters and its draw
    /// before clipping.
    public func generate(mels: [Matrix], speakers: [Int]? = nil, sources: [[Float]]? = nil, temperature: Float = 1, seed: UInt64,
                         progress: ((Int, Int) -> Void)? = nil, record: ((Int, Int, UnsafePointer<Float>, Float) -> Void)? = nil) -> [[Float]] {
        var generator = SeededGenerator(seed: seed)
        return run(mels: mels, speakers: speakers, sources: sources, forced: nil, temperature: temperature, generator: &generator, record: record,
                   progress: progress)
    }

    /// Teacher forcing: feeds `audio` (the previous true sample at every step) and hands the
    /// output parameters (3M values, pi then mu then log s, or a Gaussian's mu and log s) of every utterance and time to
    /// `record(utterance, t, params)`. This is what the parallel pass computes.
    public func teacherForced(mels: [Matrix], audio: [[Float]], speakers: [Int]? = nil, sources: [[Float]]? = nil,
                              record: @escaping (Int, Int, UnsafePointer<Float>) -> Void) {
        var generator = SeededGenerator(seed: 0)
        _ = run(mels: mels, speakers: speakers, sources: sources, forced: audio, temperature: 1, generator: &generator,
                record: { b, t, theta, _ in record(b, t, theta) }, progress: nil)
    }

    func run(mels: [Matrix], speakers: [Int]?, sources: [[Float]]?, forced: [[Float]]?, temperature: Float, generator: inout SeededGenerator,
             record: ((Int, Int, UnsafePointer<Float>, Float) -> Void)?, progress: ((Int, Int) -> Void)?) -> [[Float]] {
        precondition(!mels.isEmpty && mels.count <= batch, "between 1 and \(batch) utterances")
        for mel in mels { precondition(mel.rows == C, "mel has \(mel.rows) bands, the teacher \(C)") }
        precondition((sources != nil) == !sourceRows.isEmpty && (sources?.count ?? mels.count) == mels.count,
                     "a source-conditioned teacher needs one source per utterance, and only it takes sources")
        let B = mels.count
        setBiases(utterances: B, speakers: speakers)
        let frames = mels.map(\.columns)
        let T = (frames.max() ?? 0) * hop
        // The sources (B, T), zero past each one's end.
        let source = UnsafeMutablePointer<Float>.allocate(capacity: max(1, B * T))
        source.initialize(repeating: 0, count: max(1, B * T))
        defer { source.deallocate() }
        for (b, s) in (sources ?? []).enumerated() { (source + b * T).update(from: s, count: min(s.count, T)) }
        let sourceRows = sourceRows
        var outputs = frames.map { [Float](repeating: 0, count: $0 * hop) }
        // Normalised mels, padded with zeros to the longest (as the parallel pass pads).
        let maxFrames = frames.max() ?? 0
        var normalised = [Float](repeating: 0, count: B * C * maxFrames)
        normalised.withUnsafeMutableBufferPointer { out in
            for (b, mel) in mels.enumerated() {
                MelNormalisation.apply(mel, mean: teacher.melMean, std: teacher.melStd, frames: maxFrames, into: out.baseAddress! + b * C * maxFrames)
            }
        }
        for ringsOfWorker in rings {
            for (l, ring) in ringsOfWorker.enumerated() { ring.update(repeating: 0, count: ringSlots[l] * batch * R) }
        }
        // With linear prediction: each utterance's frame predictors and scales (the parallel
        // pass's), and the gain.
        let lp = teacher.linearPrediction, P = lp?.order ?? 0
        let lpFrames: [(coefficients: [Float], logRMS: [Float])] = lp.map { lp in
            mels.map { mel in
                var coefficients = [Float](repeating: 0, count: mel.columns * P), logRMS = [Float](repeating: 0, count: mel.columns)
                lp.analyse(logMel: mel.values, frames: mel.columns, coefficients: &coefficients, logRMS: &logRMS)
                return (coefficients, logRMS)
            }
        } ?? []
        let lpGain = lp.map { Float($0.whiteLogScale(teacher.config.output)) + teacher.store.value(teacher.logGain!)[0] } ?? 0
        let lpCentre = UnsafeMutablePointer<Float>.allocate(capacity: B)
        lpCentre.initialize(repeating: 0, count: B)
        defer { lpCentre.deallocate() }
        // With linear prediction the prediction reads the draws before clipping (the audio is
        // clipped): a draw past full scale, clipped, left the prediction (an extrapolation
        // through poles near the unit circle) overshooting again, the stack read excitations
        // thousands of scales wide, and the audio stayed at full scale for hundreds of
        // milliseconds (a 16-CPU-minute demo teacher on klettres_uk_alpha_zm, whose vowel
        // peaks near full scale). Unclipped, the recursion stays the stable synthesis filter
        // driven by excitations of the model's own scale.
        var states = lp == nil ? [] : outputs
        let previous = UnsafeMutablePointer<Float>.allocate(capacity: B)
        previous.initialize(repeating: 0, count: B)
        defer { previous.deallocate() }
        let scale = Float(0.5.squareRoot())
        let LH = L * 2 * G, SR = S + R
        let dilations = (0..<L).map { teacher.stack.config.dilation($0) }
        let workers = threads
        let barrier = SpinBarrier(parties: workers)

        // Worker j runs the same loop over a block's samples in lockstep; worker 0 also does the
        // head and the draw. They meet at the start of each sample (the previous sample is
        // drawn) and once per layer (both partial sums of the skip/residual product are done).
        let groups = channels.count
        func work(_ j: Int, block blockStart: Int, conditioning conditionBlock: UnsafePointer<Float>, _ generator: inout SeededGenerator) {
            let current = currents[j], inputs = taps[j], blockPositions = blockPositions
            for t in blockStart..<min(T, blockStart + blockLength) {
                let offset = t - blockStart, position = offset / hop * positions + positionOfOffset[offset % hop]
                barrier.wait()
                for b in 0..<B {
                    let x = previous[b]
                    for r in 0..<R { current[b * R + r] = inputWeight[r] * x + inputBias[r] }
                }
                if j == 0 { for b in 0..<B { (skip + b * S).update(from: skipBiasSum, count: S) } }
                for l in 0..<L {
                    let slots = ringSlots[l], ring = rings[j][l], d = dilations[l]
                    for k in 0..<K {
                        let back = (K - 1 - k) * d
                        inputs[k] = UnsafePointer(back == 0 ? current : ring + ((t - back) % slots + slots) % slots * B * R)
                    }
                    let parity = l & 1
                    for g in groupsOfWorker[j] {
                        let n = channels[g].count, preGate = preGates[g], gated = gateds[g]
                        // The group's rows of h: the conditioning (with the biases) plus the K taps.
                        dilated[l][g].product(y: preGate, ldy: 2 * n, addend: conditionBlock + position * LH + l * 2 * G + 2 * channels[g].lowerBound,
                                              ldAddend: blockPositions * LH, segments: inputs, count: K, ldx: R, batch: B)
                        if !sourceRows.isEmpty {
                            // h += W_s s_t on the group's rows.
                            let w = sourceRows[l][g]
                            for b in 0..<B {
                                let value = source[b * T + t], h = preGate + b * 2 * n
                                for o in 0..<(2 * n) { h[o] += w[o] * value }
                            }
                        }
                        for b in 0..<B {
                            GatedUnit.forwardVector(out: gated + b * n, tanhInput: preGate + b * 2 * n, sigmoidInput: preGate + b * 2 * n + n, count: n)
                        }
                        skipResidual[l][g].product(y: partials[g] + parity * batch * SR, ldy: SR, x: gated, ldx: n, batch: B)
                    }
                    // This layer's input joins the ring (slot t mod slots) for later samples.
                    (ring + (t % slots) * B * R).update(from: current, count: B * R)
                    barrier.wait()
                    // Both partial sums: worker 0 adds the skip rows, every worker its residual stream.
                    for b in 0..<B {
                        let p0 = partials[0] + parity * batch * SR + b * SR
                        let p1 = groups > 1 ? partials[1] + parity * batch * SR + b * SR : nil
                        if j == 0 { PartialSums.add(into: skip + b * S, p0, p1, count: S) }
                        PartialSums.residual(current + b * R, p0 + S, p1.map { $0 + S }, bias: residualBias + l * R, scale: scale, count: R)
                    }
                }
                guard j == 0 else { continue }
                // Head: relu -> 1x1 -> relu -> 1x1, then the draw.
                for i in 0..<(B * S) { hiddenA[i] = max(skip[i], 0) }
                head1.product(y: hiddenB, ldy: S, x: hiddenA, ldx: S, batch: B)
                for b in 0..<B {
                    for i in 0..<S { hiddenB[b * S + i] = max(hiddenB[b * S + i] + head1Bias[i], 0) }
                }
                head2.product(y: params, ldy: width, x: hiddenB, ldx: S, batch: B)
                for b in 0..<B {
                    for i in 0..<width { params[b * width + i] += head2Bias[i] }
                    if let lp, t < outputs[b].count {
                        // The mixture around the prediction from this utterance's past samples,
                        // in units of its frame's error scale (as `Teacher.offsetMixture`).
                        let f = lp.frame(ofSample: t, frames: frames[b])
                        let (coefficients, logRMS) = lpFrames[b]
                        var prediction: Float = 0
                        states[b].withUnsafeBufferPointer { past in
                            coefficients.withUnsafeBufferPointer { a in
                                for k in 1...max(1, min(P, t)) where k <= t { prediction -= a[f * P + k - 1] * past[t - k] }
                            }
                        }
                        lpCentre[b] = prediction
                        let logSigma = logRMS[f] + lpGain, sigma = exp(logSigma)
                        let config = teacher.config
                        for m in 0..<config.components {
                            let mean = b * width + config.meanChannel(m)
                            params[mean] = prediction + sigma * params[mean]
                            params[b * width + config.logScaleChannel(m)] += logSigma
                        }
                    }
                    let theta = UnsafePointer(params + b * width)
                    let x: Float
                    if let forced {
                        x = t < forced[b].count ? forced[b][t] : 0
                    } else if teacher.config.output == .gaussian {
                        x = DiscretizedGaussian.draw(theta, stride: 1, logScaleMin: teacher.config.logScaleMin, temperature: temperature,
                                                     clip: lp == nil, generator: &generator)
                    } else {
                        x = LogisticMixture.draw(theta, stride: 1, mixtures: M, logScaleMin: teacher.config.logScaleMin,
                                                 temperature: temperature, clip: lp == nil, generator: &generator)
                    }
                    if t < outputs[b].count {
                        outputs[b][t] = max(-1, min(1, x))
                        if lp != nil { states[b][t] = x }
                        record?(b, t, theta, x)
                    }
                    previous[b] = x
                    if let lp, t < outputs[b].count {
                        // The stack reads the excitation in the prior's units (as the parallel pass).
                        let f = lp.frame(ofSample: t, frames: frames[b])
                        previous[b] = (x - lpCentre[b]) * exp(-(lpFrames[b].logRMS[f] + Float(lp.logScalePerRMS)))
                    }
                }
                if let progress, (t + 1) % hop == 0 || t + 1 == T { progress(t + 1, T) }
            }
        }

        let blocks = Array(stride(from: 0, to: T, by: blockLength))
        if workers > 1 {
            // Per block: the conditioning on this thread with BLAS and the toolkit's own threads
            // (the helper sleeps meanwhile), then the per-sample loop on both workers.
            let start = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
            let conditioning = conditionBlocks[0]
            let helper = Thread {
                var unused = SeededGenerator(seed: 0)
                for block in blocks {
                    start.wait()
                    work(1, block: block, conditioning: conditioning, &unused)
                    finished.signal()
                }
            }
            helper.stackSize = 1 << 20
            helper.start()
            for block in blocks {
                prepareConditioning(into: conditioning, normalised: normalised, utterances: B, frames: maxFrames, start: block)
                start.signal()
                work(0, block: block, conditioning: conditioning, &generator)
                finished.wait()
            }
        } else if conditionBlocks.count == 2 {
            // One worker: the spare core computes the next block's conditioning (BLAS on one
            // thread, so it stays off the worker's core) while this one samples the current block.
            let threadsBefore = BLAS.threads
            BLAS.setThreads(1)
            defer { BLAS.setThreads(threadsBefore) }
            let start = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
            let buffers = conditionBlocks, normalised = normalised
            let helper = Thread {
                for (n, block) in blocks.enumerated().dropFirst() {
                    start.wait()
                    self.prepareConditioning(into: buffers[n % 2], normalised: normalised, utterances: B, frames: maxFrames, start: block)
                    finished.signal()
                }
            }
            helper.stackSize = 1 << 20
            helper.start()
            if let first = blocks.first {
                prepareConditioning(into: buffers[0], normalised: normalised, utterances: B, frames: maxFrames, start: first)
            }
            for (n, block) in blocks.enumerated() {
                if n + 1 < blocks.count { start.signal() }
                work(0, block: block, conditioning: buffers[n % 2], &generator)
                if n + 1 < blocks.count { finished.wait() }
            }
        } else {
            for block in blocks {
                prepareConditioning(into: conditionBlocks[0], normalised: normalised, utterances: B, frames: maxFrames, start: block)
                work(0, block: block, conditioning: conditionBlocks[0], &generator)
            }
        }
        return outputs
    }
}
