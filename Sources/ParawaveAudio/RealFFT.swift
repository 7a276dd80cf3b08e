import CFFTW
import Foundation

/// A real-input FFT of one size through FFTW in double precision, with its plans made once.
///
/// The analysis front end (mel features, Griffin-Lim) runs in double precision: a
/// single-precision FFT's rounding, about 1e-7 of a frame's total energy, is a large
/// relative error in bands 60 dB below the frame's peak, and mels must match librosa to
/// 1e-4 relative in every band. Inputs and outputs of the front end are Float32.
///
/// `forward` is FFTW's unnormalised r2c: X[k] = sum_n x[n] e^{-2 pi i k n / N}, k = 0...N/2,
/// stored interleaved (re, im). `inverse` is the unnormalised c2r, so
/// `inverse(forward(x)) = N x`. An instance owns its aligned work buffers and is used by
/// one thread at a time; plan creation, which FFTW does not allow concurrently, is serialised.
public final class RealFFT: @unchecked Sendable {
    /// Transform size N.
    public let size: Int
    /// Number of complex bins, N/2 + 1.
    public var bins: Int { size / 2 + 1 }
    /// Time-domain work buffer, (N).
    public let real: UnsafeMutablePointer<Double>
    /// Frequency-domain work buffer, (N/2 + 1, 2) interleaved.
    public let complex: UnsafeMutablePointer<Double>
    private let forwardPlan: fftw_plan
    private let inversePlan: fftw_plan

    /// FFTW's planner is not thread-safe: every plan in the package is made under this lock.
    static let planLock = NSLock()

    public init(size: Int) {
        precondition(size >= 2, "FFT size must be at least 2")
        self.size = size
        real = fftw_alloc_real(size)
        complex = UnsafeMutableRawPointer(fftw_alloc_complex(size / 2 + 1)).bindMemory(to: Double.self, capacity: 2 * (size / 2 + 1))
        let complexPointer = OpaquePointer(complex)
        Self.planLock.lock()
        // FFTW_ESTIMATE keeps planning instant and the chosen algorithm (hence the
        // rounding) identical from run to run: results are reproducible.
        forwardPlan = fftw_plan_dft_r2c_1d(Int32(size), real, UnsafeMutablePointer(complexPointer), UInt32(FFTW_ESTIMATE))
        inversePlan = fftw_plan_dft_c2r_1d(Int32(size), UnsafeMutablePointer(complexPointer), real, UInt32(FFTW_ESTIMATE))
        Self.planLock.unlock()
    }

    deinit {
        Self.planLock.lock()
        fftw_destroy_plan(forwardPlan)
        fftw_destroy_plan(inversePlan)
        Self.planLock.unlock()
        fftw_free(real)
        fftw_free(complex)
    }

    /// `complex` <- r2c(`real`).
    @inline(__always)
    public func forward() { fftw_execute(forwardPlan) }

    /// `real` <- c2r(`complex`); destroys `complex`.
    @inline(__always)
    public func inverse() { fftw_execute(inversePlan) }
}
