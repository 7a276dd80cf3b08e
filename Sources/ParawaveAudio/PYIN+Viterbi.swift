import Foundation

/// pYIN's decoding: the Viterbi path through the pitch-state HMM (a voiced and an unvoiced
/// copy of every pitch bin), exploiting the banded transition matrix.
extension PitchTracker {
    /// log observation probabilities of frame t, (2S): voiced bins, then unvoiced.
    func logObservation(_ o: PitchObservation, into out: UnsafeMutablePointer<Double>) {
        let S = settings.pitchBins
        let logTiny = log(Self.tiny)
        for q in 0..<S { out[q] = logTiny }
        for c in o.candidates { out[c.bin] = log(c.probability + Self.tiny) }
        let unvoiced = log((1 - o.voicedProbability) / Double(S) + Self.tiny)
        for q in S..<(2 * S) { out[q] = unvoiced }
    }

    /// The most likely state per frame (voiced bin q < S, unvoiced S + q), with the banded transition.
    ///
    /// For target (b, q) the best source is the best of: the voiced block's
    /// max_r v[r] + log T[r][q] + log P(0 -> b), the unvoiced block's likewise, and the previous
    /// frame's first best state g at log(tiny) (a zero transition: dense librosa's fallback).
    /// Ties go to the lowest source index, as numpy's argmax. log(p T) is taken as
    /// log p + log T, which differs from librosa's log(p T + tiny) by rounding only.
    ///
    /// The forward pass keeps the values of every frame, (F, 2S) (6.5 kB a frame at the
    /// defaults), and only maxima, which vectorise; the backward pass recomputes, by the same
    /// sums, the first best source of each state on the path.
    public func decode(_ observations: [PitchObservation]) -> [Int] {
        let S = settings.pitchBins, h = half, F = observations.count, N = 2 * S
        guard F > 0 else { return [] }
        let stay = 1 - settings.switchProbability
        let logStay = log(stay), logSwitch = log((1 - stay) / 1), logTiny = log(Self.tiny)
        var values = [Double](repeating: 0, count: F * N)  // (F, 2S)
        let logObs = UnsafeMutablePointer<Double>.allocate(capacity: N)
        // The previous values of each block padded by h with -inf, (2, S + 2h).
        let padded = UnsafeMutablePointer<Double>.allocate(capacity: 2 * (S + 2 * h))
        padded.initialize(repeating: -.infinity, count: 2 * (S + 2 * h))
        let best = UnsafeMutablePointer<Double>.allocate(capacity: N)  // (2, S): max_r v_a[r] + log T[r][q]
        defer { for p in [logObs, padded, best] { p.deallocate() } }
        var path = [Int](repeating: 0, count: F)

        values.withUnsafeMutableBufferPointer { buffer in
            logBand.withUnsafeBufferPointer { bandBuffer in
                let V = buffer.baseAddress!, band = bandBuffer.baseAddress!
                let logInit = log(1 / Double(N) + Self.tiny)
                logObservation(observations[0], into: logObs)
                for j in 0..<N { V[j] = logObs[j] + logInit }
                for t in 1..<F {
                    let previous = V + (t - 1) * N, current = V + t * N
                    logObservation(observations[t], into: logObs)
                    var top = previous[0]
                    for j in 1..<N { top = Swift.max(top, previous[j]) }
                    let outOfBand = top + logTiny
                    for a in 0..<2 {
                        let f = padded + a * (S + 2 * h) + h
                        f.update(from: previous + a * S, count: S)
                        Self.bandedMax(f, band, bins: S, half: h, best: best + a * S)
                    }
                    for q in 0..<S {
                        current[q] = logObs[q] + Swift.max(Swift.max(best[q] + logStay, best[S + q] + logSwitch), outOfBand)
                        current[S + q] = logObs[S + q] + Swift.max(Swift.max(best[q] + logSwitch, best[S + q] + logStay), outOfBand)
                    }
                }
                // The final frame's first best state, then each state's first best source.
                var state = 0
                let last = V + (F - 1) * N
                for j in 1..<N where last[j] > last[state] { state = j }
                path[F - 1] = state
                for t in stride(from: F - 1, to: 0, by: -1) {
                    let previous = V + (t - 1) * N
                    var g = 0
                    for j in 1..<N where previous[j] > previous[g] { g = j }
                    let b = state / S, q = state % S
                    var v = -Double.infinity, from = 0
                    for a in 0..<2 {
                        var m = -Double.infinity, r = 0
                        for d in -h...h where q + d >= 0 && q + d < S {
                            let c = previous[a * S + q + d] + band[(d + h) * S + q]
                            if c > m { m = c; r = q + d }
                        }
                        let c = m + (a == b ? logStay : logSwitch)
                        if c > v { v = c; from = a * S + r }  // block 0's sources precede block 1's
                    }
                    if previous[g] + logTiny > v || (previous[g] + logTiny == v && g < from) { from = g }
                    state = from
                    path[t - 1] = state
                }
            }
        }
        return path
    }

    /// One block's max-plus product with the banded log transition, for q = 0..<S:
    /// best[q] = max_{d = -h...h} f[q + d] + band[(d + h) S + q]. `f` is valid on -h..<S + h
    /// (-inf outside the block). Sixteen targets at a time in registers.
    @inline(__always)
    static func bandedMax(_ f: UnsafePointer<Double>, _ band: UnsafePointer<Double>, bins S: Int, half h: Int,
                          best: UnsafeMutablePointer<Double>) {
        typealias V = SIMD4<Double>
        @inline(__always) func load(_ p: UnsafePointer<Double>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        var q = 0
        while q + 16 <= S {
            var m0 = V(repeating: -.infinity), m1 = m0, m2 = m0, m3 = m0
            var row = band + q, src = f + q - h
            for _ in 0...(2 * h) {
                let c0 = load(src) + load(row), c1 = load(src + 4) + load(row + 4)
                let c2 = load(src + 8) + load(row + 8), c3 = load(src + 12) + load(row + 12)
                m0 = m0.replacing(with: c0, where: c0 .> m0)
                m1 = m1.replacing(with: c1, where: c1 .> m1)
                m2 = m2.replacing(with: c2, where: c2 .> m2)
                m3 = m3.replacing(with: c3, where: c3 .> m3)
                row += S
                src += 1
            }
            UnsafeMutableRawPointer(best + q).storeBytes(of: m0, as: V.self)
            UnsafeMutableRawPointer(best + q + 4).storeBytes(of: m1, as: V.self)
            UnsafeMutableRawPointer(best + q + 8).storeBytes(of: m2, as: V.self)
            UnsafeMutableRawPointer(best + q + 12).storeBytes(of: m3, as: V.self)
            q += 16
        }
        while q < S {
            var m = -Double.infinity
            for d in -h...h { m = Swift.max(m, f[q + d] + band[(d + h) * S + q]) }
            best[q] = m
            q += 1
        }
    }

    /// The librosa recursion with the dense (2S, 2S) log transition log(kron + tiny), O(F S^2):
    /// the reference for `decode`.
    public func decodeDense(_ observations: [PitchObservation]) -> [Int] {
        let S = settings.pitchBins, N = 2 * S, F = observations.count
        guard F > 0 else { return [] }
        let stay = 1 - settings.switchProbability
        let blocks = [[stay, (1 - stay) / 1], [(1 - stay) / 1, stay]]
        var logTransT = [Double](repeating: 0, count: N * N)  // (to, from)
        for i in 0..<N {
            for j in 0..<N {
                logTransT[j * N + i] = log(blocks[i / S][j / S] * localTransition[(i % S) * S + j % S] + Self.tiny)
            }
        }
        var value = [Double](repeating: 0, count: N), next = value, logObs = value
        var pointers = [UInt16](repeating: 0, count: F * N)
        logObs.withUnsafeMutableBufferPointer { logObservation(observations[0], into: $0.baseAddress!) }
        let logInit = log(1 / Double(N) + Self.tiny)
        for j in 0..<N { value[j] = logObs[j] + logInit }
        for t in 1..<max(F, 1) {
            logObs.withUnsafeMutableBufferPointer { logObservation(observations[t], into: $0.baseAddress!) }
            for j in 0..<N {
                var bestValue = -Double.infinity, from = 0
                for i in 0..<N {
                    let c = value[i] + logTransT[j * N + i]
                    if c > bestValue { bestValue = c; from = i }
                }
                next[j] = logObs[j] + bestValue
                pointers[t * N + j] = UInt16(from)
            }
            swap(&value, &next)
        }
        return backtrack(final: value, pointers: pointers, frames: F)
    }

    /// log P(path, observations) as the dense librosa model scores it: log p_init + sum of
    /// log(observation + tiny) + sum of log(transition + tiny); the Viterbi paths maximise it.
    public func logLikelihood(of path: [Int], _ observations: [PitchObservation]) -> Double {
        let S = settings.pitchBins, N = 2 * S
        guard !path.isEmpty else { return 0 }
        let stay = 1 - settings.switchProbability
        let logObs = UnsafeMutablePointer<Double>.allocate(capacity: N)
        defer { logObs.deallocate() }
        var total = log(1 / Double(N) + Self.tiny)
        for (t, state) in path.enumerated() {
            logObservation(observations[t], into: logObs)
            total += logObs[state]
            if t > 0 {
                let from = path[t - 1]
                let block = (from < S) == (state < S) ? stay : (1 - stay) / 1
                total += log(block * localTransition[(from % S) * S + state % S] + Self.tiny)
            }
        }
        return total
    }

    /// The path ending in the final frame's first best state, following `pointers` (F, 2S).
    func backtrack(final value: [Double], pointers: [UInt16], frames F: Int) -> [Int] {
        let N = value.count
        var state = 0
        for j in 1..<N where value[j] > value[state] { state = j }
        var path = [Int](repeating: 0, count: F)
        path[F - 1] = state
        for t in stride(from: F - 2, through: 0, by: -1) {
            path[t] = Int(pointers[(t + 1) * N + path[t + 1]])
        }
        return path
    }
}
