import Foundation
import Testing

import ParawaveAudio

struct LineChartTests {
    @Test func ticksAreRoundNumbers() {
        #expect(LineChart.niceTicks(0, 1200, count: 9) == [0, 200, 400, 600, 800, 1000, 1200])
        #expect(LineChart.niceTicks(7.8, 11.8, count: 4) == [8, 10])
        #expect(LineChart.niceTicks(-0.03, 0.07, count: 5) == [-0.02, 0, 0.02, 0.04, 0.06])
        #expect(LineChart.logTicks(-1.3, 0.2) == [-1, 0])
        #expect(LineChart.format(12000) == "12K" && LineChart.format(0.0005) == "5E-4" && LineChart.format(2.5) == "2.5")
    }

    /// Each series is drawn in its colour inside the plot area; the image has one panel per
    /// quantity.
    @Test func drawsEverySeries() {
        let red: (UInt8, UInt8, UInt8) = (214, 39, 40), blue: (UInt8, UInt8, UInt8) = (31, 119, 180)
        let panels = [LineChart.Panel(title: "loss", series: [LineChart.Series(label: "a", color: red, points: [(0, 3), (10, 1), (20, 2)])]),
                      LineChart.Panel(title: "kl", series: [LineChart.Series(label: "b", color: blue, points: [(0, 1), (20, 0.01)])],
                                      logarithmic: true)]
        let one = LineChart.render(Array(panels.prefix(1)), width: 400, plotHeight: 100)
        let two = LineChart.render(panels, width: 400, plotHeight: 100)
        #expect(two.width == 400 && two.height > one.height + 100)
        func count(_ image: RGBImage, _ c: (UInt8, UInt8, UInt8)) -> Int {
            stride(from: 0, to: image.pixels.count, by: 3).filter { image.pixels[$0] == c.0 && image.pixels[$0 + 1] == c.1 && image.pixels[$0 + 2] == c.2 }.count
        }
        #expect(count(two, red) > 300 && count(two, blue) > 300)
        #expect(count(one, blue) == 0)
    }
}
