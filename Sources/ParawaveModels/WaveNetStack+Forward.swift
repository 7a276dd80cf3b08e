import Foundation
import ParawaveCore
import ParawaveEngine

extension WaveNetStack {
    /// Samples per time tile of forward-only activations made from now on.
    nonisolated(unsafe) public static var forwardTile = 512

    /// The forward pass without training activations: layer by layer, and within a layer in
    /// time tiles of `forwardTile` samples shared among the workers (`Parallel.threads`),
    /// each calling single-threaded BLAS on its own tiles, so a layer costs one meeting of the
    /// workers rather than a thread hand-off per product. Per tile the layer input at the K
    /// taps' shifts is stacked, so the taps are one product with k = KR (S-small: 192); the
    /// skip and residual outputs are one product of (S + R) rows; everything stays in cache.
    /// The conditioning term W_c c_up joins h from `conditionTerms` when c_up is constant over
    /// each frame's interior (the nearest upsampler, `Activations.frameRate`), which saves
    /// the k = Cc part of every layer's product (S-small: 80 of 272); otherwise c_up is
    /// stacked under the taps (k = KR + Cc). A source (sample-rate, Cs channels) is stacked
    /// right under the taps either way. The sums run in a different order from the training
    /// pass, so the two agree to Float32 rounding.
    func forwardTiled(_ a: Activations, x: UnsafePointer<Float>, mel: UnsafePointer<Float>, speaker: UnsafePointer<Float>?,
                      source: UnsafePointer<Float>?, store: ParameterStore) {
        let c = config, B = a.batch, T = a.length, F = a.frames, R = c.residualChannels, G = c.gateOutChannels, S = c.skipChannels
        let C = c.conditionChannels, K = c.kernelSize, Cs = c.sourceChannels, KS = K * R + Cs, KC = KS + C, SR = S + R, hop = c.hop
        let frameRate = a.frameRate, reps = c.upsampleKernel, p = (reps - 1) / 2, rows = frameRate ? KS : KC
        let scale = Float(0.5.squareRoot())
        let w = { (e: ParameterStore.Entry) in UnsafePointer(store.value(e)) }
        let tile = a.tile, workers = a.workers
        let tilesPerUtterance = (T + tile - 1) / tile
        let blasThreads = BLAS.threads
        if workers > 1 { BLAS.setThreads(1) }
        defer { if workers > 1 { BLAS.setThreads(blasThreads) } }
        if frameRate { representativeConditioning(a, mel: mel, store: store) } else { upsampleForward(a, mel: mel, store: store) }
        let stride = B * R * T
        let res = a.residual.pointer, skip = a.skipSum.pointer, gateBiases = a.gateBias.pointer
        let cond = a.conditioned.pointer, representatives = a.representatives.pointer, terms = a.conditionTerms.pointer
        let hAll = a.preGate.pointer, zAll = a.gated.pointer, xAll = a.stacked.pointer, oAll = a.outputs.pointer
        let wh = a.stackedWeight.pointer, wsr = a.skipResidualWeight.pointer
        input.forward(out: res, inp: x, weight: w(inputWeight), bias: w(inputBias), batch: B, length: T)
        a.skipSum.zero()
        for (l, layer) in layers.enumerated() {
            let dilation = c.dilation(l)
            // h = [W_0 .. W_{K-1} (W_s) (W_c)] [x(t - (K-1)d); ..; x(t); (s(t)); (c_up(t))] + bias.
            let dilatedW = w(layer.dilatedWeight), conditionW = w(layer.conditionWeight)
            let sourceW = layer.sourceWeight.map { w($0) }
            for o in 0..<(2 * G) {
                for k in 0..<K { (wh + o * KC + k * R).update(from: dilatedW + (k * 2 * G + o) * R, count: R) }
                if let sourceW { (wh + o * KC + K * R).update(from: sourceW + o * Cs, count: Cs) }
                (wh + o * KC + KS).update(from: conditionW + o * C, count: C)
            }
            wsr.update(from: w(layer.skipWeight), count: S * G)
            (wsr + S * G).update(from: w(layer.residualWeight), count: R * G)
            gateBias(l, speaker: speaker, batch: B, store: store, into: gateBiases)
            if frameRate {
                // W_c c_up + bias of h at each frame's representative positions.
                for b in 0..<B {
                    let out = terms + b * 2 * G * F * reps
                    for o in 0..<(2 * G) { (out + o * F * reps).update(repeating: gateBiases[b * 2 * G + o], count: F * reps) }
                    BLAS.sgemm(m: 2 * G, n: F * reps, k: C, a: conditionW, lda: C, b: representatives + b * C * F * reps,
                               ldb: F * reps, beta: 1, c: out, ldc: F * reps)
                }
            }
            let skipB = w(layer.skipBias), residualB = w(layer.residualBias)
            let input = res + a.residualSlot(l) * stride, output = res + a.residualSlot(l + 1) * stride
            let gateBias = UnsafePointer(gateBiases), conditionTerms = frameRate ? UnsafePointer(terms) : nil
            let count = B * tilesPerUtterance
            // The first layer reads the waveform's embedding, whose quiet passages bfloat16's 8-bit
            // mantissa would drown: it stays float32, as the input convolution does.
            let precision = l == 0 ? MatrixPrecision.single : BLAS.precision
            DispatchQueue.concurrentPerform(iterations: workers) { worker in BLAS.withPrecision(precision) {
                let h = hAll + worker * 2 * G * tile, z = zAll + worker * G * tile
                let stackedX = xAll + worker * rows * tile, out = oAll + worker * SR * tile
                for index in (count * worker / workers)..<(count * (worker + 1) / workers) {
                    let b = index / tilesPerUtterance, t0 = index % tilesPerUtterance * tile, n = min(tile, T - t0)
                    let xIn = input + b * R * T, xOut = output + b * R * T
                    // Tap k reads x[t - (K - 1 - k) d]; before the start it reads zeros.
                    for k in 0..<K {
                        let shift = (K - 1 - k) * dilation, zeros = min(n, max(0, shift - t0))
                        for r in 0..<R {
                            let row = stackedX + (k * R + r) * n
                            if zeros > 0 { row.update(repeating: 0, count: zeros) }
                            if zeros < n { (row + zeros).update(from: xIn + r * T + t0 + zeros - shift, count: n - zeros) }
                        }
                    }
                    if let source {
                        let sb = source + b * Cs * T + t0
                        for channel in 0..<Cs { (stackedX + (K * R + channel) * n).update(from: sb + channel * T, count: n) }
                    }
                    if let conditionTerms {
                        let termsOfB = conditionTerms + b * 2 * G * F * reps
                        for o in 0..<(2 * G) {
                            WaveNetStack.expandFrames(into: h + o * n, from: termsOfB + o * F * reps, start: t0, count: n, hop: hop,
                                                      kernel: reps, reach: p)
                        }
                    } else {
                        let cb = cond + b * C * T + t0
                        for channel in 0..<C { (stackedX + (KS + channel) * n).update(from: cb + channel * T, count: n) }
                        let bias = gateBias + b * 2 * G
                        for o in 0..<(2 * G) { (h + o * n).update(repeating: bias[o], count: n) }
                    }
                    BLAS.sgemm(m: 2 * G, n: n, k: rows, a: wh, lda: KC, b: stackedX, ldb: n, beta: 1, c: h, ldc: n)
                    for channel in 0..<G {
                        GatedUnit.forwardVector(out: z + channel * n, tanhInput: h + channel * n, sigmoidInput: h + (G + channel) * n, count: n)
                    }
                    BLAS.sgemm(m: SR, n: n, k: G, a: wsr, lda: G, b: z, ldb: n, beta: 0, c: out, ldc: n)
                    // skip += W_s z + b_s; x_out = (x_in + (W_r z + b_r)) * sqrt(0.5)
                    let sb = skip + b * S * T + t0
                    for o in 0..<S {
                        let row = sb + o * T, source = out + o * n, bo = skipB[o]
                        for t in 0..<n { row[t] += source[t] + bo }
                    }
                    for o in 0..<R {
                        let src = xIn + o * T + t0, dst = xOut + o * T + t0, source = out + (S + o) * n, bo = residualB[o]
                        for t in 0..<n { dst[t] = (src[t] + (source[t] + bo)) * scale }
                    }
                }
            } }
        }
    }

    /// Samples [start, start + count) of one row from its values at `kernel` positions per
    /// frame (see `representativeConditioning`): offsets below `reach` and from
    /// hop - kernel + reach + 1 on have their own values; the offsets between share one.
    @inline(__always)
    static func expandFrames(into row: UnsafeMutablePointer<Float>, from values: UnsafePointer<Float>, start: Int, count: Int, hop: Int,
                             kernel: Int, reach: Int) {
        var t = start
        let end = start + count
        while t < end {
            let f = t / hop, frameStart = f * hop, frameEnd = min(end, frameStart + hop), v = values + f * kernel
            while t < frameEnd && t - frameStart < reach { row[t - start] = v[t - frameStart]; t += 1 }
            let interiorEnd = min(frameEnd, frameStart + hop - kernel + reach + 1)
            if t < interiorEnd { (row + t - start).update(repeating: v[reach], count: interiorEnd - t); t = interiorEnd }
            while t < frameEnd { row[t - start] = v[t - frameStart - hop + kernel]; t += 1 }
        }
    }

    /// The nearest upsampler's c_up at `kernel` positions per frame into `a.representatives`
    /// (B, Cc, F * kernel): for kernel k and p = (k - 1) / 2, sample offsets 0 ..< p of each
    /// frame, offset p (which stands for every offset whose window stays inside the frame, up
    /// to hop - k + p), and hop - k + p + 1 ..< hop. c_up(t) = b + sum_j W_j mel(frame of
    /// t + j - p), zero outside the utterance, as the full-length convolution computes it.
    func representativeConditioning(_ a: Activations, mel: UnsafePointer<Float>, store: ParameterStore) {
        representatives(mel: mel, batch: a.batch, frames: a.frames, into: a.representatives.pointer, store: store)
    }

    /// Position (0 ..< upsampleKernel) standing for each sample offset (0 ..< hop) of a frame
    /// in `representatives`.
    var representativeOfOffset: [Int] {
        let k = config.upsampleKernel, p = (k - 1) / 2, hop = config.hop
        return (0..<hop).map { o in o < p ? o : (o <= hop - k + p ? p : o - hop + k) }
    }

    /// c_up at `upsampleKernel` positions per frame, (B, Cc, F * kernel), from the
    /// normalised mel (B, Cc, F); see `representativeConditioning`.
    func representatives(mel: UnsafePointer<Float>, batch B: Int, frames F: Int, into out: UnsafeMutablePointer<Float>, store: ParameterStore) {
        let c = config, C = c.conditionChannels, k = c.upsampleKernel, p = (k - 1) / 2, hop = c.hop
        let T = F * hop
        let weight = UnsafePointer(store.value(upsampleWeight)), bias = UnsafePointer(store.value(upsampleBias))
        // W_j mel for each tap j: (k, C, F) per utterance.
        let tapped = UnsafeMutablePointer<Float>.allocate(capacity: max(1, k * C * F))
        defer { tapped.deallocate() }
        for b in 0..<B {
            for j in 0..<k {
                BLAS.sgemm(m: C, n: F, k: C, a: weight + j * C * C, lda: C, b: mel + b * C * F, ldb: F, c: tapped + j * C * F, ldc: F)
            }
            let rows = out + b * C * F * k
            for f in 0..<F {
                for r in 0..<k {
                    let offset = r < p ? r : (r == p ? p : hop - k + r), t = f * hop + offset
                    for channel in 0..<C { rows[channel * F * k + f * k + r] = bias[channel] }
                    for j in 0..<k {
                        let source = t + j - p
                        guard source >= 0 && source < T else { continue }
                        let frame = source / hop
                        for channel in 0..<C { rows[channel * F * k + f * k + r] += tapped[(j * C + channel) * F + frame] }
                    }
                }
            }
        }
    }
}
