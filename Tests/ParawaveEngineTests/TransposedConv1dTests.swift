import Foundation
import ParawaveEngine
import ParawaveTestSupport
import Testing

/// Transposed convolution (the learned upsampler): fast (one product per tap block, then
/// overlap-add) equals the naive definition, the backward matches Float64 central differences
/// of the naive forward (directional differences for the large tap-blocked case), each frame's
/// taps are centred on its own samples, and forward and gradients match PyTorch's
/// ConvTranspose1d (scripts/make_fixtures.py) within 1e-4 relative.
struct TransposedConv1dTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var cin: Int, cout: Int, stride: Int, k: Int?, padding: Int?, batch: Int, frames: Int
        var testDescription: String {
            "Cin \(cin) Cout \(cout) s \(stride) K \(k ?? 2 * stride) pad \(padding.map(String.init) ?? "centred") B \(batch) F \(frames)"
        }
    }

    static let cases: [Case] = [
        Case(cin: 3, cout: 5, stride: 2, k: nil, padding: nil, batch: 2, frames: 7),
        Case(cin: 4, cout: 3, stride: 4, k: nil, padding: nil, batch: 3, frames: 5),
        Case(cin: 2, cout: 3, stride: 16, k: nil, padding: nil, batch: 2, frames: 5),
        Case(cin: 2, cout: 3, stride: 256, k: nil, padding: nil, batch: 2, frames: 3),
        Case(cin: 3, cout: 2, stride: 3, k: 6, padding: nil, batch: 2, frames: 9),   // K - s odd
        Case(cin: 3, cout: 4, stride: 4, k: 4, padding: nil, batch: 2, frames: 5),   // K = s, no overlap
        Case(cin: 2, cout: 3, stride: 4, k: 11, padding: 0, batch: 2, frames: 3),    // padding at its bounds
        Case(cin: 2, cout: 3, stride: 4, k: 11, padding: 7, batch: 2, frames: 3),
        Case(cin: 5, cout: 2, stride: 8, k: nil, padding: nil, batch: 1, frames: 1),  // a single frame
    ]

    /// K * Cout * F above the scratch budget: the taps run in two products (508 + 4).
    static let blocked = Case(cin: 2, cout: 16, stride: 256, k: nil, padding: nil, batch: 2, frames: 129)

    func conv(_ c: Case) -> TransposedConv1d {
        TransposedConv1d(inputChannels: c.cin, outputChannels: c.cout, stride: c.stride, kernelSize: c.k, padding: c.padding)
    }

    @Test(arguments: cases + [blocked])
    func fastEqualsNaive(_ c: Case) {
        let layer = conv(c)
        let T = layer.outputLength(frames: c.frames)
        let x = GradientCheck.random(c.batch * c.cin * c.frames, seed: 1)
        let w = GradientCheck.random(layer.weightCount, seed: 2)
        let bias = GradientCheck.random(c.cout, seed: 3)
        var out = [Float](repeating: .nan, count: c.batch * c.cout * T)
        layer.forward(out: &out, inp: x, weight: w, bias: bias, batch: c.batch, frames: c.frames)
        let naive = layer.forwardNaive(inp: x, weight: w, bias: bias, batch: c.batch, frames: c.frames)
        for i in out.indices { #expect(abs(out[i] - naive[i]) <= 1e-5 * max(1, abs(naive[i])), "element \(i)") }
        // accumulate adds onto what is there.
        var twice = out
        layer.forward(out: &twice, inp: x, weight: w, bias: bias, batch: c.batch, frames: c.frames, accumulate: true)
        for i in out.indices { #expect(abs(twice[i] - 2 * naive[i]) <= 2e-5 * max(1, abs(naive[i]))) }
    }

    @Test(arguments: cases)
    func backwardMatchesFiniteDifferences(_ c: Case) {
        let layer = conv(c)
        let n = c.batch * c.cout * layer.outputLength(frames: c.frames)
        let x = GradientCheck.random(c.batch * c.cin * c.frames, seed: 4)
        let w = GradientCheck.random(layer.weightCount, seed: 5)
        let bias = GradientCheck.random(c.cout, seed: 6)
        let r = GradientCheck.random(n, seed: 7)
        // loss = sum(R * convT(x)); dOut = R. Gradients start non-zero: backward must add.
        let dx0 = GradientCheck.random(x.count, seed: 8), dw0 = GradientCheck.random(w.count, seed: 9)
        let db0 = GradientCheck.random(c.cout, seed: 10)
        var dx = dx0, dw = dw0, db = db0
        layer.backward(dInp: &dx, dWeight: &dw, dBias: &db, dOut: r, inp: x, weight: w, batch: c.batch, frames: c.frames)
        for i in dx.indices { dx[i] -= dx0[i] }
        for i in dw.indices { dw[i] -= dw0[i] }
        for i in db.indices { db[i] -= db0[i] }
        let rd = r.map(Double.init), xd = x.map(Double.init), wd = w.map(Double.init), bd = bias.map(Double.init)
        func loss(_ out: [Double]) -> Double { zip(out, rd).map(*).reduce(0, +) }
        let ex = GradientCheck.worstRelativeError(point: xd, analytic: dx, indices: GradientCheck.indices(x.count, samples: 400)) {
            loss(layer.forwardNaive(inp: $0, weight: wd, bias: bd, batch: c.batch, frames: c.frames))
        }
        let ew = GradientCheck.worstRelativeError(point: wd, analytic: dw, indices: GradientCheck.indices(w.count, samples: 400)) {
            loss(layer.forwardNaive(inp: xd, weight: $0, bias: bd, batch: c.batch, frames: c.frames))
        }
        let eb = GradientCheck.worstRelativeError(point: bd, analytic: db) {
            loss(layer.forwardNaive(inp: xd, weight: wd, bias: $0, batch: c.batch, frames: c.frames))
        }
        #expect(ex.error < 1e-3, "input gradient \(ex)")
        #expect(ew.error < 1e-3, "weight gradient \(ew)")
        #expect(eb.error < 1e-3, "bias gradient \(eb)")

        // Without dInp the parameter gradients are the same.
        var dw2 = [Float](repeating: 0, count: w.count), db2 = [Float](repeating: 0, count: c.cout)
        layer.backward(dInp: nil, dWeight: &dw2, dBias: &db2, dOut: r, inp: x, weight: w, batch: c.batch, frames: c.frames)
        for i in dw.indices { #expect(abs(dw2[i] - dw[i]) <= 1e-4 * max(1, abs(dw[i]))) }
    }

    /// The blocked case is too large for central differences of the naive forward element by
    /// element, but the layer is linear in each of x, W and bias, so the gradient's dot product
    /// with any direction v equals loss(p + v) - loss(p) exactly: checked for random directions.
    @Test func blockedBackwardMatchesDirectionalDifferences() {
        let c = Self.blocked, layer = conv(c)
        let n = c.batch * c.cout * layer.outputLength(frames: c.frames)
        let x = GradientCheck.random(c.batch * c.cin * c.frames, seed: 11)
        let w = GradientCheck.random(layer.weightCount, seed: 12)
        let bias = GradientCheck.random(c.cout, seed: 13)
        let r = GradientCheck.random(n, seed: 14)
        var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: w.count), db = [Float](repeating: 0, count: c.cout)
        layer.backward(dInp: &dx, dWeight: &dw, dBias: &db, dOut: r, inp: x, weight: w, batch: c.batch, frames: c.frames)
        let rd = r.map(Double.init), xd = x.map(Double.init), wd = w.map(Double.init), bd = bias.map(Double.init)
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            zip(layer.forwardNaive(inp: x, weight: w, bias: b, batch: c.batch, frames: c.frames), rd).map(*).reduce(0, +)
        }
        func dot(_ g: [Float], _ v: [Double]) -> Double { zip(g, v).map { Double($0) * $1 }.reduce(0, +) }
        func plus(_ p: [Double], _ v: [Double]) -> [Double] { zip(p, v).map(+) }
        let base = loss(xd, wd, bd)
        for seed in UInt64(20)..<23 {
            let vx = GradientCheck.random(x.count, seed: seed).map(Double.init)
            let vw = GradientCheck.random(w.count, seed: seed + 10).map(Double.init)
            let vb = GradientCheck.random(c.cout, seed: seed + 20).map(Double.init)
            for (label, analytic, numeric) in [
                ("input", dot(dx, vx), loss(plus(xd, vx), wd, bd) - base),
                ("weight", dot(dw, vw), loss(xd, plus(wd, vw), bd) - base),
                ("bias", dot(db, vb), loss(xd, wd, plus(bd, vb)) - base),
            ] {
                let error = abs(analytic - numeric) / max(abs(numeric), 1e-12)
                #expect(error < 1e-4, "\(label) gradient along direction \(seed): \(analytic) vs \(numeric)")
            }
        }
    }

    /// With K = 2s (s even) an impulse at frame f reaches samples [f*s - s/2, f*s + 3s/2): the
    /// K taps straddle the frame's own samples [f*s, (f+1)*s) by s/2 on each side.
    @Test(arguments: [2, 4, 16, 256])
    func impulseIsCentredOnItsFrame(_ s: Int) {
        let layer = TransposedConv1d(inputChannels: 1, outputChannels: 1, stride: s)
        #expect(layer.kernelSize == 2 * s && layer.padding == s / 2)
        let frames = 5, f = 2, T = frames * s
        let w = [Float](repeating: 1, count: layer.weightCount)
        var x = [Float](repeating: 0, count: frames)
        x[f] = 1
        var y = [Float](repeating: .nan, count: T)
        layer.forward(out: &y, inp: x, weight: w, bias: nil, batch: 1, frames: frames)
        for t in 0..<T { #expect(y[t] == ((f * s - s / 2)..<(f * s + 3 * s / 2) ~= t ? 1 : 0), "t \(t)") }
    }

    struct ReferenceCase: Decodable {
        var name: String, inputChannels: Int, outputChannels: Int, stride: Int, kernelSize: Int, padding: Int, batch: Int, frames: Int
    }

    @Test func matchesPyTorchReference() throws {
        let file = try SafeTensors.read(Fixtures.path("engine/transposed_conv.safetensors"))
        let cases = try JSONDecoder().decode([ReferenceCase].self, from: Data(try #require(file.metadata["cases"]).utf8))
        #expect(cases.count == 7)

        func expectClose(_ ours: [Float], _ reference: [Float], _ label: String) {
            let worst = GradientCheck.worstGoldenError(ours, reference)
            #expect(worst <= 1e-4, "\(label): worst relative error \(worst)")
        }
        for c in cases {
            // Built with the default (centred) padding; the file records PyTorch's.
            let layer = TransposedConv1d(inputChannels: c.inputChannels, outputChannels: c.outputChannels, stride: c.stride,
                                         kernelSize: c.kernelSize)
            #expect(layer.padding == c.padding, "\(c.name) padding")
            let T = layer.outputLength(frames: c.frames)
            let t = { (key: String, shape: [Int]) in try file.tensor("\(c.name).\(key)", shape: shape, file: "transposed_conv") }
            let w = try t("weight", [c.kernelSize, c.outputChannels, c.inputChannels]), bias = try t("bias", [c.outputChannels])
            let x = try t("x", [c.batch, c.inputChannels, c.frames]), proj = try t("proj", [c.batch, c.outputChannels, T])
            var y = [Float](repeating: .nan, count: c.batch * c.outputChannels * T)
            layer.forward(out: &y, inp: x, weight: w, bias: bias, batch: c.batch, frames: c.frames)
            expectClose(y, try t("y", [c.batch, c.outputChannels, T]), "\(c.name) output")

            var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: w.count)
            var db = [Float](repeating: 0, count: c.outputChannels)
            layer.backward(dInp: &dx, dWeight: &dw, dBias: &db, dOut: proj, inp: x, weight: w, batch: c.batch, frames: c.frames)
            expectClose(dw, try t("grad.weight", [c.kernelSize, c.outputChannels, c.inputChannels]), "\(c.name) weight gradient")
            expectClose(db, try t("grad.bias", [c.outputChannels]), "\(c.name) bias gradient")
            expectClose(dx, try t("grad.x", [c.batch, c.inputChannels, c.frames]), "\(c.name) input gradient")
        }
    }
}
