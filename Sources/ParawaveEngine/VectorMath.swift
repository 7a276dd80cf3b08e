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

    /// Cephes' logf core: log(1 + f) + e ln 2 for f in [sqrt(1/2) - 1, sqrt(2) - 1] (degree-9
    /// polynomial, ln 2 in a high and a low part).
    @inline(__always)
    static func logCore(_ f: Vector, _ e: Vector) -> Vector {
        let z = f * f
        var p = Vector(repeating: 7.037_683_629_2e-2)
        p = p * f - 1.151_461_031_0e-1
        p = p * f + 1.167_699_874_0e-1
        p = p * f - 1.242_014_084_6e-1
        p = p * f + 1.424_932_278_7e-1
        p = p * f - 1.666_805_766_5e-1
        p = p * f + 2.000_071_476_5e-1
        p = p * f - 2.499_999_399_3e-1
        p = p * f + 3.333_333_117_4e-1
        var r = p * f * z
        r = r + e * -2.121_944_40e-4
        r = r - 0.5 * z
        return f + r + e * 0.693_359_375
    }

    /// The natural log of positive normal floats: x = m 2^e with m in [sqrt(1/2), sqrt(2))
    /// from the exponent bits, then `logCore`. Relative error about 1e-7.
    @inline(__always)
    public static func log(_ x: Vector) -> Vector {
        let bits = unsafeBitCast(x, to: SIMD8<Int32>.self)
        // m in [0.5, 1) and e with x = m 2^e (x positive: no sign bit to keep).
        var m = unsafeBitCast((bits & 0x007F_FFFF) | 0x3F00_0000, to: Vector.self)
        var e = Vector(((bits &>> 23) & 0xFF) &- 126)
        let low = m .< 0.707_106_78
        e.replace(with: e - 1, where: low)
        m.replace(with: m + m, where: low)
        return logCore(m - 1, e)
    }

    /// log(1 + y) for y in [0, 1]: u = 1 + y, `logCore` of u (halved above sqrt 2), and the
    /// correction -((u - 1) - y) / u for the rounding of 1 + y (Goldberg), so that tiny y keep
    /// their relative accuracy. Absolute error about 1e-7.
    @inline(__always)
    public static func log1pUnit(_ y: Vector) -> Vector {
        let u = 1 + y
        let high = u .> 1.414_213_56
        var f = u - 1
        f.replace(with: u * 0.5 - 1, where: high)
        let logU = logCore(f, Vector(repeating: 0).replacing(with: 1, where: high))
        return logU - ((u - 1) - y) / u
    }

    /// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|).
    @inline(__always)
    public static func softplus(_ x: Vector) -> Vector {
        let negative = x .< 0
        return x.replacing(with: 0, where: negative) + log1pUnit(exp(x.replacing(with: -x, where: .!negative)))
    }

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
