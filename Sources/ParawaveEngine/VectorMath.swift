/// Elementwise transcendental functions on 8 Float32 lanes, for the hot elementwise kernels.
///
/// `exp` reduces x = n ln 2 + r (n rounded by the 1.5 * 2^23 trick) with |r| <= ln 2 / 2 (ln 2 split in a high and a low part so
/// n ln 2 is exact), evaluates Cephes' degree-6 polynomial for e^r (relative error about
/// 1e-7) and scales by 2^n through the exponent bits. Inputs are clamped to [-87.3, 88.3],
/// where the result is a normal float. `sigmoid` and `tanh` are built on it; their absolute
/// error is about 1e-7.
public enum VectorMath {
    public typealias Vector = SIMD8<Float>

    @inline(__always)
    public static func exp(_ x: Vector) -> Vector {
        // Clamp with comparisons and lane selects, which compile to vector instructions.
        var clamped = x
        clamped.replace(with: Vector(repeating: -87.3), where: x .< -87.3)
        clamped.replace(with: Vector(repeating: 88.3), where: x .> 88.3)
        // Round to nearest by adding 1.5 * 2^23: the integer n sits in the low mantissa bits.
        let magic = Vector(repeating: 12_582_912)
        let shifted = clamped * 1.442_695_04 + magic
        let n = shifted - magic
        var r = clamped - n * 0.693_359_375
        r = r - n * -2.121_944_4e-4
        var p = Vector(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        p = p * r * r + r + 1
        // 2^n from the exponent bits: (n + 127) << 23, n read from `shifted`'s mantissa.
        let bits = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: Vector.self)
    }

    /// 1 / (1 + e^-x).
    @inline(__always)
    public static func sigmoid(_ x: Vector) -> Vector { 1 / (1 + exp(-x)) }

    /// 1 - 2 / (e^{2x} + 1).
    @inline(__always)
    public static func tanh(_ x: Vector) -> Vector { 1 - 2 / (exp(x + x) + 1) }

    /// Loads 8 values from `p`.
    @inline(__always)
    public static func load(_ p: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
    }

    /// Stores 8 values at `p`.
    @inline(__always)
    public static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self)
    }

    /// Sum of `count` values with four 8-lane accumulators (a strict-order scalar loop cannot
    /// be vectorised by the compiler, and runs at one add per 3-4 cycles).
    public static func sum(_ p: UnsafePointer<Float>, count: Int) -> Float {
        var a0 = Vector(), a1 = Vector(), a2 = Vector(), a3 = Vector()
        var i = 0
        while i + 32 <= count {
            a0 += load(p + i); a1 += load(p + i + 8); a2 += load(p + i + 16); a3 += load(p + i + 24)
            i += 32
        }
        while i + 8 <= count { a0 += load(p + i); i += 8 }
        var s = ((a0 + a1) + (a2 + a3)).sum()
        while i < count { s += p[i]; i += 1 }
        return s
    }
}
