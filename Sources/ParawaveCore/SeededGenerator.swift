import Foundation

/// A small, fast, seedable random number generator whose whole state is one UInt64,
/// so it can be saved in a checkpoint and restored exactly (SplitMix64, Steele et al. 2014).
///
/// `state += 0x9E3779B97F4A7C15; z = state; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
/// z = (z ^ z>>27) * 0x94D049BB133111EB; return z ^ z>>31`.
public struct SeededGenerator: RandomNumberGenerator, Codable, Equatable, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1), from the top 24 bits.
    @inline(__always)
    public mutating func uniformOpen() -> Float {
        (Float(next() >> 40) + 0.5) * (1 / 16_777_216)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    @inline(__always)
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal by Box-Muller.
    public mutating func normal() -> Float {
        let u1 = Double((next() >> 11) + 1) * 0x1.0p-53
        let u2 = uniform()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

