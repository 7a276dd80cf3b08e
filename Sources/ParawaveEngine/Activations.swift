import Foundation
import ParawaveCore

/// The gated activation unit of WaveNet: `z = tanh(a) * sigmoid(g)` where the input h
/// (B, 2G, T) holds a in channels [0, G) and g in [G, 2G); z is (B, G, T).
public enum GatedUnit {
    public static func forward(out z: UnsafeMutablePointer<Float>, inp h: UnsafePointer<Float>, batch: Int, channels G: Int, length T: Int) {
        Parallel.forEachChunk(batch * G, minimumChunk: 4) { rows in
            for row in rows {
                let b = row / G, c = row % G
                let a = h + (b * 2 * G + c) * T, g = a + G * T, o = z + row * T
                var t = 0
                while t + 8 <= T {
                    VectorMath.store(VectorMath.tanh(VectorMath.load(a + t)) * VectorMath.sigmoid(VectorMath.load(g + t)), o + t)
                    t += 8
                }
                while t < T { o[t] = tanh(a[t]) * StableMath.sigmoid(g[t]); t += 1 }
            }
        }
    }

    /// dh += dz * dz/dh: da = dz sigma(g) (1 - tanh^2 a), dg = dz tanh(a) sigma(g) (1 - sigma(g)).
    public static func backward(dInp dh: UnsafeMutablePointer<Float>, dOut dz: UnsafePointer<Float>, inp h: UnsafePointer<Float>,
                                batch: Int, channels G: Int, length T: Int) {
        Parallel.forEachChunk(batch * G, minimumChunk: 4) { rows in
            for row in rows {
                let b = row / G, c = row % G
                let a = h + (b * 2 * G + c) * T, g = a + G * T
                let da = dh + (b * 2 * G + c) * T, dg = da + G * T, d = dz + row * T
                var t = 0
                while t + 8 <= T {
                    let ta = VectorMath.tanh(VectorMath.load(a + t)), sg = VectorMath.sigmoid(VectorMath.load(g + t))
                    let dv = VectorMath.load(d + t)
                    VectorMath.store(VectorMath.load(da + t) + dv * sg * (1 - ta * ta), da + t)
                    VectorMath.store(VectorMath.load(dg + t) + dv * ta * sg * (1 - sg), dg + t)
                    t += 8
                }
                for t in t..<T {
                    let ta = tanh(a[t]), sg = StableMath.sigmoid(g[t])
                    da[t] += d[t] * sg * (1 - ta * ta)
                    dg[t] += d[t] * ta * sg * (1 - sg)
                }
            }
        }
    }
}

/// ReLU, y = max(x, 0), elementwise over `count` values.
public enum ReLU {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        Parallel.forEachChunk(count, minimumChunk: 16384) { r in for i in r { out[i] = max(inp[i], 0) } }
    }

    /// dInp += dOut where inp > 0.
    public static func backward(dInp: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        Parallel.forEachChunk(count, minimumChunk: 16384) { r in for i in r where inp[i] > 0 { dInp[i] += dOut[i] } }
    }
}

/// Nearest-neighbour upsampling in time: (B, C, F) -> (B, C, F * hop), each frame repeated
/// `hop` times, so frame f covers samples [f*hop, (f+1)*hop).
public enum RepeatUpsample {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows: Int, frames F: Int, hop: Int) {
        Parallel.forEachChunk(rows, minimumChunk: 4) { r in
            for row in r {
                let x = inp + row * F, y = out + row * F * hop
                for f in 0..<F { (y + f * hop).update(repeating: x[f], count: hop) }
            }
        }
    }

    /// dInp (B, C, F) += sum over each frame's hop samples of dOut.
    public static func backward(dInp: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, rows: Int, frames F: Int, hop: Int) {
        Parallel.forEachChunk(rows, minimumChunk: 4) { r in
            for row in r {
                let dy = dOut + row * F * hop, dx = dInp + row * F
                for f in 0..<F { dx[f] += VectorMath.sum(dy + f * hop, count: hop) }
            }
        }
    }
}
