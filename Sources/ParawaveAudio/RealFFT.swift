import CFFTW
import Foundation

/// FFTW's planner, which is not thread-safe: every plan in the package is made and destroyed
/// under this one lock.
enum FFTWPlanner {
    static let lock = NSLock()

    /// `body` with the planner to itself.
    static func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}

/// A precision FFTW computes in: Double (`fftw_*`) or Float (`fftwf_*`).
public protocol FFTWScalar: BinaryFloatingPoint {
    static func allocateReal(_ count: Int) -> UnsafeMutablePointer<Self>
    /// (bins, 2) interleaved.
    static func allocateComplex(_ bins: Int) -> UnsafeMutablePointer<Self>
    /// The r2c and c2r plans of `size` between `real` and `complex`.
    static func plans(size: Int, real: UnsafeMutablePointer<Self>, complex: UnsafeMutablePointer<Self>) -> (forward: OpaquePointer, inverse: OpaquePointer)
    static func execute(_ plan: OpaquePointer)
    static func destroy(_ plan: OpaquePointer)
    static func free(_ buffer: UnsafeMutablePointer<Self>)
}

extension Double: FFTWScalar {
    public static func allocateReal(_ count: Int) -> UnsafeMutablePointer<Double> { fftw_alloc_real(count) }
    public static func allocateComplex(_ bins: Int) -> UnsafeMutablePointer<Double> {
        UnsafeMutableRawPointer(fftw_alloc_complex(bins)).bindMemory(to: Double.self, capacity: 2 * bins)
    }
    public static func plans(size: Int, real: UnsafeMutablePointer<Double>, complex: UnsafeMutablePointer<Double>) -> (forward: OpaquePointer, inverse: OpaquePointer) {
        let c = UnsafeMutablePointer<fftw_complex>(OpaquePointer(complex))
        return (fftw_plan_dft_r2c_1d(Int32(size), real, c, UInt32(FFTW_ESTIMATE)), fftw_plan_dft_c2r_1d(Int32(size), c, real, UInt32(FFTW_ESTIMATE)))
    }
    @inline(__always) public static func execute(_ plan: OpaquePointer) { fftw_execute(plan) }
    public static func destroy(_ plan: OpaquePointer) { fftw_destroy_plan(plan) }
    public static func free(_ buffer: UnsafeMutablePointer<Double>) { fftw_free(buffer) }
}

extension Float: FFTWScalar {
    public static func allocateReal(_ count: Int) -> UnsafeMutablePointer<Float> { fftwf_alloc_real(count) }
    public static func allocateComplex(_ bins: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer(fftwf_alloc_complex(bins)).bindMemory(to: Float.self, capacity: 2 * bins)
    }
    public static func plans(size: Int, real: UnsafeMutablePointer<Float>, complex: UnsafeMutablePointer<Float>) -> (forward: OpaquePointer, inverse: OpaquePointer) {
        let c = UnsafeMutablePointer<fftwf_complex>(OpaquePointer(complex))
        return (fftwf_plan_dft_r2c_1d(Int32(size), real, c, UInt32(FFTW_ESTIMATE)), fftwf_plan_dft_c2r_1d(Int32(size), c, real, UInt32(FFTW_ESTIMATE)))
    }
    @inline(__always) public static func execute(_ plan: OpaquePointer) { fftwf_execute(plan) }
    public static func destroy(_ plan: OpaquePointer) { fftwf_destroy_plan(plan) }
    public static func free(_ buffer: UnsafeMutablePointer<Float>) { fftwf_free(buffer) }
}

/// A real-input FFT of one size through FFTW, in double (`RealFFT<Double>`) or single
/// (`RealFFT<Float>`) precision, with its plans made once.
///
/// The analysis front end (mel features, Griffin-Lim, pitch, quality metrics) runs in double
/// precision: a single-precision FFT's rounding, about 1e-7 of a frame's total energy, is a
/// large relative error in bands 60 dB below the frame's peak, and mels must match librosa to
/// 1e-4 relative in every band. Inputs and outputs of the front end are Float32. The spectral
/// losses of training run in single precision (DESIGN.md section 2).
///
/// `forward` is FFTW's unnormalised r2c: X[k] = sum_n x[n] e^{-2 pi i k n / N}, k = 0...N/2,
/// stored interleaved (re, im). `inverse` is the unnormalised c2r, so
/// `inverse(forward(x)) = N x`. An instance owns its aligned work buffers and is used by
/// one thread at a time; plan creation, which FFTW does not allow concurrently, is serialised
/// (`FFTWPlanner`). FFTW_ESTIMATE keeps planning instant and the chosen algorithm (hence the
/// rounding) identical from run to run: results are reproducible.
public final class RealFFT<Scalar: FFTWScalar>: @unchecked Sendable {
    /// Transform size N.
    public let size: Int
    /// Number of complex bins, N/2 + 1.
    public var bins: Int { size / 2 + 1 }
    /// Time-domain work buffer, (N).
    public let real: UnsafeMutablePointer<Scalar>
    /// Frequency-domain work buffer, (N/2 + 1, 2) interleaved.
    public let complex: UnsafeMutablePointer<Scalar>
    private let forwardPlan: OpaquePointer
    private let inversePlan: OpaquePointer

    public init(size: Int) {
        precondition(size >= 2, "FFT size must be at least 2")
        self.size = size
        real = Scalar.allocateReal(size)
        complex = Scalar.allocateComplex(size / 2 + 1)
        let (real, complex) = (real, complex)
        (forwardPlan, inversePlan) = FFTWPlanner.locked { Scalar.plans(size: size, real: real, complex: complex) }
    }

    deinit {
        let (forwardPlan, inversePlan) = (forwardPlan, inversePlan)
        FFTWPlanner.locked {
            Scalar.destroy(forwardPlan)
            Scalar.destroy(inversePlan)
        }
        Scalar.free(real)
        Scalar.free(complex)
    }

    /// `complex` <- r2c(`real`).
    @inline(__always)
    public func forward() { Scalar.execute(forwardPlan) }

    /// `real` <- c2r(`complex`); destroys `complex`.
    @inline(__always)
    public func inverse() { Scalar.execute(inversePlan) }
}
