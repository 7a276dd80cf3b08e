import Foundation
import ParawaveCore
import ParawaveEngine
import Testing

struct OptimizerTests {
    @Test func storeKeepsNamedViewsAcrossGrowth() {
        let store = ParameterStore()
        let a = store.add("a", shape: [2, 3])
        store.fill(a, 1.5)
        let b = store.add("b", shape: [5000])  // forces reallocation
        #expect(store.count == 5006 && a.offset == 0 && b.offset == 6)
        #expect(store.entry("a") == a && store.entry("missing") == nil)
        #expect(Array(UnsafeBufferPointer(start: store.value(a), count: 6)) == [Float](repeating: 1.5, count: 6))
        store.gradient(b)[0] = 3
        store.gradient(a)[0] = 4
        #expect(store.gradientNorm == 5)
        store.zeroGradients()
        #expect(store.gradientArray.allSatisfy { $0 == 0 })
    }

    @Test func adamConvergesOnAQuadratic() {
        // f(w) = sum_i c_i (w_i - t_i)^2
        let store = ParameterStore()
        let w = store.add("w", shape: [8])
        let target: [Float] = [1, -2, 3, 0.5, -0.25, 4, -3, 2]
        let curvature: [Float] = [1, 10, 0.1, 5, 2, 0.5, 3, 1]
        let adam = Adam(store: store, emaDecay: 0.9)
        for _ in 0..<3000 {
            store.zeroGradients()
            for i in 0..<8 { store.gradient(w)[i] = 2 * curvature[i] * (store.value(w)[i] - target[i]) }
            adam.update(store, learningRate: 0.05)
        }
        for i in 0..<8 { #expect(abs(store.value(w)[i] - target[i]) < 1e-3, "w[\(i)]") }
        for i in 0..<8 { #expect(abs(adam.ema[i] - target[i]) < 1e-2, "ema[\(i)]") }
    }

    @Test func firstStepAndEmaFollowTheirFormulas() {
        let store = ParameterStore()
        let w = store.add("w", shape: [2])
        store.value(w)[0] = 1
        store.value(w)[1] = -1
        store.gradient(w)[0] = 0.5
        store.gradient(w)[1] = -2
        let adam = Adam(store: store, emaDecay: 0.75)
        adam.update(store, learningRate: 0.1)
        // Bias-corrected first step moves each weight by lr * sign(g) (up to epsilon).
        #expect(abs(store.value(w)[0] - 0.9) < 1e-6 && abs(store.value(w)[1] - (-0.9)) < 1e-6)
        // The first step's decay is min(0.75, 2/11).
        let d: Float = 2.0 / 11
        #expect(abs(adam.ema[0] - (d * 1 + (1 - d) * 0.9)) < 1e-6)
        #expect(abs(adam.ema[1] - (d * -1 + (1 - d) * -0.9)) < 1e-6)
        // From step 26 on, (1 + t) / (10 + t) > 0.75 and the configured decay holds.
        #expect(Adam.emaDecay(0.75, step: 25) < 0.75 && Adam.emaDecay(0.75, step: 26) == 0.75)
        #expect(Adam.emaDecay(0.9999, step: 1000) == Float(1001) / 1010)
    }

    @Test func clippingScalesTheWholeGradient() {
        let store = ParameterStore()
        let w = store.add("w", shape: [2])
        store.gradient(w)[0] = 30
        store.gradient(w)[1] = 40
        let adam = Adam(store: store, clipNorm: 5)
        let norm = adam.update(store, learningRate: 0.1)
        #expect(norm == 50)
        // m after one step = (1 - b1) * clipped g = 0.1 * (3, 4).
        #expect(abs(adam.m[0] - 0.3) < 1e-6 && abs(adam.m[1] - 0.4) < 1e-6)
    }

    @Test func schedules() {
        #expect(LearningRateSchedule.constant.rate(base: 0.1, step: 99) == 0.1)
        let step = LearningRateSchedule.step(every: 10, factor: 0.5)
        #expect(step.rate(base: 1, step: 10) == 1 && step.rate(base: 1, step: 11) == 0.5 && step.rate(base: 1, step: 21) == 0.25)
        let cosine = LearningRateSchedule.warmupCosine(warmup: 10, total: 110, floor: 0.1)
        #expect(abs(cosine.rate(base: 1, step: 5) - 0.5) < 1e-12)
        #expect(abs(cosine.rate(base: 1, step: 10) - 1) < 1e-12)
        #expect(abs(cosine.rate(base: 1, step: 60) - 0.55) < 1e-12)
        #expect(abs(cosine.rate(base: 1, step: 110) - 0.1) < 1e-12)
        #expect(abs(cosine.rate(base: 1, step: 500) - 0.1) < 1e-12)
    }

    /// Parameter groups: each is clipped by its own gradient norm, exactly as a separate Adam on
    /// a store of its own would be, and a frozen group keeps its values and EMA bit for bit.
    @Test func groupsClipAloneAndFrozenGroupsStay() {
        func store(_ sizes: [Int]) -> ParameterStore {
            let s = ParameterStore()
            for (i, n) in sizes.enumerated() { s.add("p\(i)", shape: [n]) }
            return s
        }
        let joint = store([5, 3, 4]), first = store([5]), second = store([3])
        let start = (0..<12).map { Float($0) * 0.1 - 0.4 }
        joint.setValues(start)
        first.setValues(Array(start[0..<5]))
        second.setValues(Array(start[5..<8]))
        let adam = Adam(store: joint, emaDecay: 0.99, groups: [ParameterGroup(range: 0..<5, clipNorm: 1), ParameterGroup(range: 5..<8, clipNorm: 0.5),
                                                               ParameterGroup(range: 8..<12, clipNorm: 1, frozen: true)])
        let adamFirst = Adam(store: first, clipNorm: 1, emaDecay: 0.99), adamSecond = Adam(store: second, clipNorm: 0.5, emaDecay: 0.99)
        for step in 0..<20 {
            let g = (0..<12).map { Float(($0 * 7 + step * 3) % 11) - 5 }
            joint.zeroGradients()
            for i in 0..<12 { joint.gradients[i] = g[i] }
            for i in 0..<5 { first.gradients[i] = g[i] }
            for i in 0..<3 { second.gradients[i] = g[5 + i] }
            let norm = adam.update(joint, learningRate: 0.01)
            #expect(norm == adamFirst.update(first, learningRate: 0.01))
            adamSecond.update(second, learningRate: 0.01)
            #expect(adam.lastNorms[1] == second.gradientNorm)
        }
        let values = joint.valueArray
        #expect(Array(values[0..<5]) == first.valueArray && Array(values[5..<8]) == second.valueArray)
        #expect(Array(adam.ema[0..<5]) == adamFirst.ema && Array(adam.ema[5..<8]) == adamSecond.ema)
        #expect(Array(values[8..<12]) == Array(start[8..<12]) && Array(adam.ema[8..<12]) == Array(start[8..<12]))
        #expect(adam.m[8..<12].allSatisfy { $0 == 0 } && adam.v[8..<12].allSatisfy { $0 == 0 })
    }
}
