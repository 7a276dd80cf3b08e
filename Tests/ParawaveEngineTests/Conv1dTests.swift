import ParawaveEngine
import ParawaveTestSupport
import Testing

/// Dilated convolution: fast (BLAS on shifted views) equals the naive definition, and the
/// backward matches Float64 central differences of the naive forward.
struct Conv1dTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var cin: Int, cout: Int, k: Int, d: Int, padding: Int?, batch: Int, length: Int
        var testDescription: String { "Cin \(cin) Cout \(cout) K \(k) d \(d) pad \(padding.map(String.init) ?? "causal") B \(batch) T \(length)" }
    }

    static let cases: [Case] = [
        Case(cin: 3, cout: 5, k: 2, d: 1, padding: nil, batch: 2, length: 37),
        Case(cin: 4, cout: 6, k: 3, d: 2, padding: nil, batch: 3, length: 29),
        Case(cin: 2, cout: 3, k: 3, d: 4, padding: nil, batch: 1, length: 11),
        Case(cin: 5, cout: 4, k: 3, d: 1, padding: 1, batch: 2, length: 17),
        Case(cin: 7, cout: 2, k: 1, d: 1, padding: nil, batch: 2, length: 23),
        Case(cin: 3, cout: 3, k: 3, d: 16, padding: nil, batch: 2, length: 13),
    ]

    func conv(_ c: Case) -> Conv1d {
        Conv1d(inputChannels: c.cin, outputChannels: c.cout, kernelSize: c.k, dilation: c.d, padding: c.padding)
    }

    @Test(arguments: cases)
    func fastEqualsNaive(_ c: Case) {
        let layer = conv(c)
        let x = GradientCheck.random(c.batch * c.cin * c.length, seed: 1)
        let w = GradientCheck.random(layer.weightCount, seed: 2)
        let bias = GradientCheck.random(c.cout, seed: 3)
        var out = [Float](repeating: .nan, count: c.batch * c.cout * c.length)
        layer.forward(out: &out, inp: x, weight: w, bias: bias, batch: c.batch, length: c.length)
        let naive = layer.forwardNaive(inp: x, weight: w, bias: bias, batch: c.batch, length: c.length)
        for i in out.indices { #expect(abs(out[i] - naive[i]) <= 1e-5 * max(1, abs(naive[i])), "element \(i)") }
        // accumulate adds onto what is there.
        var twice = out
        layer.forward(out: &twice, inp: x, weight: w, bias: bias, batch: c.batch, length: c.length, accumulate: true)
        for i in out.indices { #expect(abs(twice[i] - 2 * naive[i]) <= 2e-5 * max(1, abs(naive[i]))) }
    }

    @Test(arguments: cases)
    func backwardMatchesFiniteDifferences(_ c: Case) {
        let layer = conv(c)
        let n = c.batch * c.cout * c.length
        let x = GradientCheck.random(c.batch * c.cin * c.length, seed: 4)
        let w = GradientCheck.random(layer.weightCount, seed: 5)
        let bias = GradientCheck.random(c.cout, seed: 6)
        let r = GradientCheck.random(n, seed: 7)
        // loss = sum(R * conv(x)); dOut = R.
        var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: w.count), db = [Float](repeating: 0, count: c.cout)
        layer.backward(dInp: &dx, dWeight: &dw, dBias: &db, dOut: r, inp: x, weight: w, batch: c.batch, length: c.length)
        let rd = r.map(Double.init), xd = x.map(Double.init), wd = w.map(Double.init), bd = bias.map(Double.init)
        func loss(_ out: [Double]) -> Double { zip(out, rd).map(*).reduce(0, +) }
        let ex = GradientCheck.worstRelativeError(point: xd, analytic: dx) {
            loss(layer.forwardNaive(inp: $0, weight: wd, bias: bd, batch: c.batch, length: c.length))
        }
        let ew = GradientCheck.worstRelativeError(point: wd, analytic: dw) {
            loss(layer.forwardNaive(inp: xd, weight: $0, bias: bd, batch: c.batch, length: c.length))
        }
        let eb = GradientCheck.worstRelativeError(point: bd, analytic: db) {
            loss(layer.forwardNaive(inp: xd, weight: wd, bias: $0, batch: c.batch, length: c.length))
        }
        #expect(ex.error < 1e-3, "input gradient \(ex)")
        #expect(ew.error < 1e-3, "weight gradient \(ew)")
        #expect(eb.error < 1e-3, "bias gradient \(eb)")
    }

    @Test func causalOutputIgnoresTheFuture() {
        let layer = Conv1d.causal(inputChannels: 2, outputChannels: 2, kernelSize: 3, dilation: 2)
        let w = GradientCheck.random(layer.weightCount, seed: 8)
        var x = GradientCheck.random(2 * 20, seed: 9)
        var a = [Float](repeating: 0, count: 40), b = a
        layer.forward(out: &a, inp: x, weight: w, bias: nil, batch: 1, length: 20)
        for c in 0..<2 { x[c * 20 + 12] += 1 }  // change the input at t = 12
        layer.forward(out: &b, inp: x, weight: w, bias: nil, batch: 1, length: 20)
        for c in 0..<2 {
            for t in 0..<12 { #expect(a[c * 20 + t] == b[c * 20 + t], "t \(t) saw the future") }
            // Outputs at 12, 14 and 16 (taps at offsets 0, 2, 4) see it.
            for t in [12, 14, 16] { #expect(a[c * 20 + t] != b[c * 20 + t]) }
            for t in [13, 15, 17, 18, 19] { #expect(a[c * 20 + t] == b[c * 20 + t]) }
        }
    }
}
