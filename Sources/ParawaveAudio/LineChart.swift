import Foundation

/// Line charts as images: one panel per quantity, stacked, sharing the x axis (training
/// step), each with its own y range, gridlines at round values, tick labels and a legend.
public enum LineChart {
    /// One line: a label, a colour and (x, y) points in x order. Non-finite points are skipped.
    public struct Series {
        public var label: String
        public var color: (UInt8, UInt8, UInt8)
        public var points: [(Double, Double)]
        /// Draw a dot at every point (for sparse series such as validation).
        public var markers: Bool

        public init(label: String, color: (UInt8, UInt8, UInt8), points: [(Double, Double)], markers: Bool = false) {
            self.label = label
            self.color = color
            self.points = points.filter { $0.0.isFinite && $0.1.isFinite }
            self.markers = markers
        }
    }

    public struct Panel {
        public var title: String
        public var series: [Series]
        /// A log-scale y axis (all values must be positive; others are dropped).
        public var logarithmic: Bool

        public init(title: String, series: [Series], logarithmic: Bool = false) {
            self.title = title
            self.series = series
            self.logarithmic = logarithmic
        }
    }

    /// Colours that stay apart on white (matplotlib's tab10 first four).
    public static let palette: [(UInt8, UInt8, UInt8)] = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]

    static let left = 62, right = 14, top = 6, titleHeight = 14, gap = 10, axisHeight = 28
    static let ink: (UInt8, UInt8, UInt8) = (30, 30, 30), grid: (UInt8, UInt8, UInt8) = (225, 225, 225)

    /// Renders the panels, `width` pixels wide, each plot `plotHeight` high, x labelled `xLabel`.
    public static func render(_ panels: [Panel], width: Int = 900, plotHeight: Int = 170, xLabel: String = "step") -> RGBImage {
        precondition(!panels.isEmpty, "nothing to draw")
        let plotWidth = max(100, width - left - right)
        let xs = panels.flatMap { $0.series.flatMap { $0.points.map(\.0) } }
        let (x0, x1) = range(xs, fallback: (0, 1))
        let panelHeight = titleHeight + plotHeight + gap
        var image = RGBImage(width: left + plotWidth + right, height: top + panels.count * panelHeight + axisHeight)
        let xTicks = niceTicks(x0, x1, count: max(2, plotWidth / 90))
        func px(_ x: Double) -> Int { left + Int(((x - x0) / (x1 - x0)) * Double(plotWidth - 1)) }

        for (p, panel) in panels.enumerated() {
            let y0 = top + p * panelHeight + titleHeight
            BitmapFont.draw(panel.title, x: left, y: y0 - titleHeight + 3, color: ink, on: &image)
            let transform: (Double) -> Double = panel.logarithmic ? { log10($0) } : { $0 }
            let series = panel.series.map { s -> Series in
                var t = s
                t.points = s.points.filter { !panel.logarithmic || $0.1 > 0 }.map { ($0.0, transform($0.1)) }
                return t
            }
            let (lo, hi) = range(series.flatMap { $0.points.map(\.1) }, fallback: (0, 1))
            let pad = (hi - lo) * 0.05
            let (v0, v1) = (lo - pad, hi + pad)
            func py(_ v: Double) -> Int { y0 + plotHeight - 1 - Int(((v - v0) / (v1 - v0)) * Double(plotHeight - 1)) }

            // Grid, ticks and frame.
            for x in xTicks where x >= x0 && x <= x1 { image.fill(x: px(x), y: y0, width: 1, height: plotHeight, grid) }
            let yTicks = panel.logarithmic ? logTicks(v0, v1) : niceTicks(v0, v1, count: max(2, plotHeight / 40))
            for v in yTicks where v >= v0 && v <= v1 {
                let y = py(v)
                image.fill(x: left, y: y, width: plotWidth, height: 1, grid)
                image.fill(x: left - 4, y: y, width: 4, height: 1, ink)
                let label = panel.logarithmic ? format(pow(10, v)) : format(v)
                BitmapFont.draw(label, x: left - 6 - BitmapFont.measure(label), y: y - 3, color: ink, on: &image)
            }
            image.fill(x: left, y: y0, width: 1, height: plotHeight, ink)
            image.fill(x: left, y: y0 + plotHeight - 1, width: plotWidth, height: 1, ink)

            for s in series {
                var previous: (Int, Int)?
                for (x, v) in s.points {
                    let point = (px(x), py(v))
                    if let previous { line(&image, from: previous, to: point, s.color) }
                    if s.markers { image.fill(x: point.0 - 1, y: point.1 - 1, width: 3, height: 3, s.color) }
                    previous = point
                }
            }
            // Legend, top right.
            var lx = left + plotWidth - 4
            for s in series.reversed() {
                let w = BitmapFont.measure(s.label)
                lx -= w
                BitmapFont.draw(s.label, x: lx, y: y0 + 4, color: s.color, on: &image)
                image.fill(x: lx - 14, y: y0 + 7, width: 10, height: 2, s.color)
                lx -= 24
            }
        }
        let axisY = top + panels.count * panelHeight - gap
        for x in xTicks where x >= x0 && x <= x1 {
            image.fill(x: px(x), y: axisY, width: 1, height: 4, ink)
            let label = format(x)
            BitmapFont.draw(label, x: px(x) - BitmapFont.measure(label) / 2, y: axisY + 6, color: ink, on: &image)
        }
        BitmapFont.draw(xLabel, x: left + plotWidth - BitmapFont.measure(xLabel), y: axisY + 17, color: ink, on: &image)
        return image
    }

    /// Writes the panels as a PNG.
    public static func write(_ panels: [Panel], to path: String, xLabel: String = "step") throws {
        try render(panels, xLabel: xLabel).writePNG(to: path)
    }

    static func range(_ values: [Double], fallback: (Double, Double)) -> (Double, Double) {
        guard let lo = values.min(), let hi = values.max() else { return fallback }
        if hi - lo > 1e-12 * max(abs(lo), abs(hi), 1e-30) { return (lo, hi) }
        let d = max(abs(lo) * 0.1, 1e-3)
        return (lo - d, hi + d)
    }

    /// Round values (1, 2 or 5 times a power of ten apart) covering [lo, hi], about `count` of them.
    public static func niceTicks(_ lo: Double, _ hi: Double, count: Int) -> [Double] {
        let raw = (hi - lo) / Double(max(count, 1))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var ticks: [Double] = []
        var v = ceil(lo / step) * step
        while v <= hi + step * 1e-9 && ticks.count < 100 {
            ticks.append(abs(v) < step * 1e-9 ? 0 : v)
            v += step
        }
        return ticks
    }

    /// Decades (log10 values) in [lo, hi]; with fewer than two, the 2 and 5 between them too.
    public static func logTicks(_ lo: Double, _ hi: Double) -> [Double] {
        var ticks: [Double] = Array(stride(from: ceil(lo), through: floor(hi), by: 1.0))
        if ticks.count < 2 {
            let two = log10(2.0), five = log10(5.0)
            var finer: [Double] = []
            for d in stride(from: floor(lo), through: ceil(hi), by: 1.0) {
                for v in [d, d + two, d + five] where v >= lo && v <= hi { finer.append(v) }
            }
            ticks = finer
        }
        return ticks
    }

    /// Short labels: 12000 -> 12K, 0.0005 -> 5E-4, 2.5 -> 2.5.
    public static func format(_ v: Double) -> String {
        let a = abs(v)
        if a == 0 { return "0" }
        if a >= 1e4 && a < 1e7 && (v / 1000).rounded() == v / 1000 { return String(format: "%gK", v / 1000) }
        if a >= 1e-2 && a < 1e5 { return String(format: "%g", (v * 1e4).rounded() / 1e4) }
        return String(format: "%.0E", v).replacingOccurrences(of: "E-0", with: "E-").replacingOccurrences(of: "E+0", with: "E")
    }

    /// Bresenham's line, clipped to the image by `set`.
    static func line(_ image: inout RGBImage, from a: (Int, Int), to b: (Int, Int), _ color: (UInt8, UInt8, UInt8)) {
        var (x, y) = a
        let dx = abs(b.0 - x), dy = -abs(b.1 - y)
        let sx = x < b.0 ? 1 : -1, sy = y < b.1 ? 1 : -1
        var error = dx + dy
        while true {
            image.set(x, y, color)
            if x == b.0 && y == b.1 { break }
            let e2 = 2 * error
            if e2 >= dy { error += dy; x += sx }
            if e2 <= dx { error += dx; y += sy }
        }
    }
}
