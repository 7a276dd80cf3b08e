import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import Synchronization

// The generator's small kernels: the partial-sum reductions of its workers.

/// The per-layer meeting of the workers' partial skip/residual sums.
enum PartialSums {
    /// `y += p0 + p1` (p1 absent with one worker).
    @inline(__always)
    static func add(into y: UnsafeMutablePointer<Float>, _ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>?, count: Int) {
        var i = 0
        if let p1 {
            while i + 8 <= count { VectorMath.store(VectorMath.load(y + i) + VectorMath.load(p0 + i) + VectorMath.load(p1 + i), y + i); i += 8 }
            while i < count { y[i] += p0[i] + p1[i]; i += 1 }
        } else {
            while i + 8 <= count { VectorMath.store(VectorMath.load(y + i) + VectorMath.load(p0 + i), y + i); i += 8 }
            while i < count { y[i] += p0[i]; i += 1 }
        }
    }

    /// The residual connection: `x = (x + p0 + p1 + bias) * scale`.
    @inline(__always)
    static func residual(_ x: UnsafeMutablePointer<Float>, _ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>?,
                         bias: UnsafePointer<Float>, scale: Float, count: Int) {
        let s = SIMD8<Float>(repeating: scale)
        var i = 0
        if let p1 {
            while i + 8 <= count {
                let sum = VectorMath.load(x + i) + VectorMath.load(p0 + i) + VectorMath.load(p1 + i) + VectorMath.load(bias + i)
                VectorMath.store(sum * s, x + i)
                i += 8
            }
            while i < count { x[i] = (x[i] + p0[i] + p1[i] + bias[i]) * scale; i += 1 }
        } else {
            while i + 8 <= count {
                VectorMath.store((VectorMath.load(x + i) + VectorMath.load(p0 + i) + VectorMath.load(bias + i)) * s, x + i)
                i += 8
            }
            while i < count { x[i] = (x[i] + p0[i] + bias[i]) * scale; i += 1 }
        }
    }
}
