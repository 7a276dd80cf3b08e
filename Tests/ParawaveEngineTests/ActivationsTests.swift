import Foundation
import ParawaveEngine
import ParawaveTestSupport
import Testing

struct ActivationsTests {
    @Test func gatedUnitForwardAndBackward() {
        let B = 2, G = 3, T = 9
        let h = GradientCheck.random(B * 2 * G * T, seed: 1, scale: 3)
        var z = [Float](repeating: 0, count: B * G * T)
        GatedUnit.forward(out: &z, inp: h, batch: B, channels: G, length: T)
        func reference(_ h: [Double]) -> [Double] {
            var out = [Double](repeating: 0, count: B * G * T)
            for b in 0..<B { for c in 0..<G { for t in 0..<T {
                let a = h[(b * 2 * G + c) * T + t], g = h[(b * 2 * G + G + c) * T + t]
                out[(b * G + c) * T + t] = tanh(a) / (1 + exp(-g))
            } } }
            return out
        }
        let expected = reference(h.map(Double.init))
        for i in z.indices { #expect(abs(Double(z[i]) - expected[i]) < 1e-6) }
        let r = GradientCheck.random(z.count, seed: 2)
        var dh = [Float](repeating: 0, count: h.count)
        GatedUnit.backward(dInp: &dh, dOut: r, inp: h, batch: B, channels: G, length: T)
        let e = GradientCheck.worstRelativeError(point: h.map(Double.init), analytic: dh) { zip(reference($0), r).map { $0 * Double($1) }.reduce(0, +) }
        #expect(e.error < 1e-3, "\(e)")
    }

    @Test func reluAndUpsample() {
        let x: [Float] = [-1, 0.5, 0, 2, -3, 4]
        var y = [Float](repeating: 9, count: 6), dx = [Float](repeating: 1, count: 6)
        ReLU.forward(out: &y, inp: x, count: 6)
        #expect(y == [0, 0.5, 0, 2, 0, 4])
        ReLU.backward(dInp: &dx, dOut: [1, 2, 3, 4, 5, 6], inp: x, count: 6)
        #expect(dx == [1, 3, 1, 5, 1, 7])
        // (rows 2, F 3) -> hop 2
        var up = [Float](repeating: 0, count: 12)
        RepeatUpsample.forward(out: &up, inp: x, rows: 2, frames: 3, hop: 2)
        #expect(up == [-1, -1, 0.5, 0.5, 0, 0, 2, 2, -3, -3, 4, 4])
        var back = [Float](repeating: 0, count: 6)
        RepeatUpsample.backward(dInp: &back, dOut: (0..<12).map(Float.init), rows: 2, frames: 3, hop: 2)
        #expect(back == [1, 5, 9, 13, 17, 21])
    }

    @Test func stableMathAtExtremes() {
        #expect(StableMath.softplus(100) == 100 && StableMath.softplus(-100) > 0 && StableMath.softplus(-100) < 1e-40)
        #expect(StableMath.logSigmoid(-200) == -200)
        #expect(StableMath.sigmoid(-200) >= 0 && StableMath.sigmoid(200) == 1)
        // log(sigma(a) - sigma(b)) where the naive difference underflows to 0 in Float32.
        let value = StableMath.logSigmoidDifference(-100, -100.001)
        let expected = -100 + log(1 - exp(-0.001))  // ~ log sigma(-100) + log(1 - e^-0.001)
        #expect(abs(Double(value) - expected) < 1e-3)
        #expect(abs(StableMath.logSumExp([1000, 1000], count: 2) - (1000 + log(2))) < 1e-3)
    }
}

struct VectorMathTests {
    @Test func expTanhSigmoidMatchFoundation() {
        var worstExp = 0.0, worstTanh = 0.0, worstSigmoid = 0.0
        var x = -90.0
        while x < 90 {
            let v = VectorMath.Vector((0..<8).map { Float(x + 0.013 * Double($0)) })
            let e = VectorMath.exp(v), th = VectorMath.tanh(v), sg = VectorMath.sigmoid(v)
            for i in 0..<8 {
                let xi = Double(v[i])
                // Relative error where e^x is a normal float (below -86 it approaches subnormals).
                if xi > -86 && xi < 88.3 {
                    let reference = Foundation.exp(xi)
                    worstExp = max(worstExp, abs(Double(e[i]) - reference) / reference)
                }
                worstTanh = max(worstTanh, abs(Double(th[i]) - Foundation.tanh(xi)))
                worstSigmoid = max(worstSigmoid, abs(Double(sg[i]) - 1 / (1 + Foundation.exp(-xi))))
            }
            x += 0.0917
        }
        #expect(worstExp < 3e-7, "exp relative error \(worstExp)")
        #expect(worstTanh < 3e-7, "tanh absolute error \(worstTanh)")
        #expect(worstSigmoid < 2e-7, "sigmoid absolute error \(worstSigmoid)")
    }

    /// log over positive normal floats from 1e-37 to 1e38 (relative error, or absolute near
    /// 1 where log x is near 0), log1p over [0, 1] down to 1e-30 (relative, so tiny arguments
    /// keep their digits), and softplus from -100 to 100 (absolute and relative).
    @Test func logLog1pSoftplusMatchFoundation() {
        var worstLog = 0.0, worstLog1p = 0.0, worstSoftplus = 0.0
        var x = 1e-37
        while x < 1e38 {
            let v = VectorMath.Vector((0..<8).map { Float(x * (1 + 0.037 * Double($0))) })
            let l = VectorMath.log(v)
            for i in 0..<8 {
                let reference = Foundation.log(Double(v[i]))
                worstLog = max(worstLog, abs(Double(l[i]) - reference) / max(1, abs(reference)))
            }
            x *= 1.618
        }
        var y = 1e-30
        while y <= 1 {
            let v = VectorMath.Vector((0..<8).map { Float(min(1, y * (1 + 0.11 * Double($0)))) })
            let l = VectorMath.log1pUnit(v)
            for i in 0..<8 {
                let reference = Foundation.log1p(Double(v[i]))
                worstLog1p = max(worstLog1p, abs(Double(l[i]) - reference) / reference)
            }
            y *= 1.37
        }
        var z = -100.0
        while z < 100 {
            let v = VectorMath.Vector((0..<8).map { Float(z + 0.0031 * Double($0)) })
            let sp = VectorMath.softplus(v)
            for i in 0..<8 {
                let xi = Double(v[i]), reference = max(xi, 0) + Foundation.log1p(Foundation.exp(-abs(xi)))
                worstSoftplus = max(worstSoftplus, abs(Double(sp[i]) - reference) / max(1, reference))
            }
            z += 0.0731
        }
        #expect(worstLog < 3e-7, "log error \(worstLog)")
        #expect(worstLog1p < 4e-7, "log1p relative error \(worstLog1p)")
        #expect(worstSoftplus < 3e-7, "softplus error \(worstSoftplus)")
    }
}
