import Foundation

/// Log-mel spectrograms as colour images: one panel per spectrogram, stacked, with a
/// shared time axis in seconds, frequency ticks in kHz and a title per panel.
///
/// Values are log-mel features (natural log). All panels share one colour scale, from the
/// largest value down 80 dB (9.21 in natural-log units) or to the log floor, mapped
/// through the magma colour map; band 0 is at the bottom of its panel.
public enum SpectrogramImage {
    /// One spectrogram and its title, optionally with an F0 track drawn over it.
    public struct Panel {
        public var title: String
        /// Log-mel feature, (nMels, F).
        public var logMel: Matrix
        /// F0 in Hz per frame on the mel's grid (0 where unvoiced), drawn as a cyan line.
        public var f0: [Float]?

        public init(title: String, logMel: Matrix, f0: [Float]? = nil) {
            self.title = title
            self.logMel = logMel
            self.f0 = f0
        }
    }

    static let trackColour: (UInt8, UInt8, UInt8) = (0, 230, 255)

    static let left = 34, right = 10, top = 4, titleHeight = 12, gap = 6, axisHeight = 26
    static let ink: (UInt8, UInt8, UInt8) = (30, 30, 30)

    /// Renders the panels (all with the same settings) into one image.
    public static func render(_ panels: [Panel], settings: MelSettings) -> RGBImage {
        precondition(!panels.isEmpty, "nothing to draw")
        let frames = panels.map(\.logMel.columns).max() ?? 1
        // Short clips are stretched to at least 600 px; long ones squeezed to at most 2400.
        let plotWidth = frames < 600 ? frames * max(1, 600 / max(frames, 1)) : min(frames, 2400)
        let bands = settings.nMels
        let plotHeight = max(120, min(320, bands * 3))
        let panelHeight = titleHeight + plotHeight + gap
        var image = RGBImage(width: left + plotWidth + right, height: top + panels.count * panelHeight + axisHeight)

        let hi = panels.flatMap(\.logMel.values).max() ?? 0
        let lo = max(hi - Float(80 / 20 * log(10.0)), Float(log(settings.logFloor)))
        let span = max(hi - lo, 1e-6)

        for (p, panel) in panels.enumerated() {
            let y0 = top + p * panelHeight + titleHeight
            BitmapFont.draw(panel.title, x: left, y: y0 - titleHeight + 2, color: ink, on: &image)
            let mel = panel.logMel
            for px in 0..<plotWidth {
                // Columns cover [f0, f1) frames; several frames per column are averaged.
                let f0 = px * frames / plotWidth
                let f1 = max(f0 + 1, (px + 1) * frames / plotWidth)
                for py in 0..<plotHeight {
                    let band = (plotHeight - 1 - py) * bands / plotHeight
                    var sum: Float = 0, count = 0
                    for f in f0..<min(f1, mel.columns) { sum += mel[band, f]; count += 1 }
                    let color = count == 0 ? (UInt8(255), UInt8(255), UInt8(255)) : magma((sum / Float(count) - lo) / span)
                    image.set(left + px, y0 + py, color)
                }
            }
            if let track = panel.f0 { drawTrack(track, on: &image, y0: y0, plotWidth: plotWidth, plotHeight: plotHeight, frames: frames, settings: settings) }
            drawFrequencyTicks(&image, y0: y0, plotHeight: plotHeight, settings: settings)
        }
        drawTimeAxis(&image, y: top + panels.count * panelHeight - gap, plotWidth: plotWidth, frames: frames, settings: settings)
        return image
    }

    /// Writes the panels as a PNG.
    public static func write(_ panels: [Panel], settings: MelSettings, to path: String) throws {
        try render(panels, settings: settings).writePNG(to: path)
    }

    /// The F0 track over a panel: per pixel column the mean F0 of its voiced frames, at that
    /// frequency's height on the panel's mel axis, two pixels thick; nothing where unvoiced.
    static func drawTrack(_ track: [Float], on image: inout RGBImage, y0: Int, plotWidth: Int, plotHeight: Int, frames: Int,
                          settings: MelSettings) {
        let melLo = MelFilterbank.hzToMel(settings.fMin, htk: settings.htk)
        let melHi = MelFilterbank.hzToMel(settings.fMax, htk: settings.htk)
        for px in 0..<plotWidth {
            let f0 = px * frames / plotWidth, f1 = max(f0 + 1, (px + 1) * frames / plotWidth)
            let voiced = (f0..<min(f1, track.count)).map { track[$0] }.filter { $0.isFinite && $0 > 0 }
            guard !voiced.isEmpty else { continue }
            let hz = Double(voiced.reduce(0, +)) / Double(voiced.count)
            let position = (MelFilterbank.hzToMel(hz, htk: settings.htk) - melLo) / (melHi - melLo)
            guard position >= 0 && position <= 1 else { continue }
            let y = y0 + plotHeight - 1 - Int(position * Double(plotHeight - 1))
            image.fill(x: left + px, y: max(y0, y - 1), width: 1, height: 2, trackColour)
        }
    }

    static func drawFrequencyTicks(_ image: inout RGBImage, y0: Int, plotHeight: Int, settings: MelSettings) {
        let melLo = MelFilterbank.hzToMel(settings.fMin, htk: settings.htk)
        let melHi = MelFilterbank.hzToMel(settings.fMax, htk: settings.htk)
        for khz in [0.5, 1, 2, 4, 8, 16] where khz * 1000 > settings.fMin && khz * 1000 <= settings.fMax {
            let position = (MelFilterbank.hzToMel(khz * 1000, htk: settings.htk) - melLo) / (melHi - melLo)
            let y = y0 + plotHeight - 1 - Int(position * Double(plotHeight - 1))
            image.fill(x: left - 4, y: y, width: 4, height: 1, ink)
            let label = khz < 1 ? ".5K" : "\(Int(khz))K"
            BitmapFont.draw(label, x: left - 6 - BitmapFont.measure(label), y: y - 3, color: ink, on: &image)
        }
    }

    static func drawTimeAxis(_ image: inout RGBImage, y: Int, plotWidth: Int, frames: Int, settings: MelSettings) {
        image.fill(x: left, y: y, width: plotWidth, height: 1, ink)
        let seconds = Double(frames * settings.hopLength) / Double(settings.sampleRate)
        let steps = [0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600]
        let maxTicks = max(2, plotWidth / 70)
        let step = steps.first { seconds / $0 <= Double(maxTicks) } ?? 1200
        var t = 0.0
        while t <= seconds + 1e-9 {
            let x = left + Int(t / seconds * Double(plotWidth - 1))
            image.fill(x: x, y: y, width: 1, height: 4, ink)
            let label = step < 1 ? String(format: "%.2g", t) : String(Int(t))
            BitmapFont.draw(label, x: x - BitmapFont.measure(label) / 2, y: y + 6, color: ink, on: &image)
            t += step
        }
        let title = "TIME (S)"
        BitmapFont.draw(title, x: left + plotWidth - BitmapFont.measure(title), y: y + 16, color: ink, on: &image)
    }

    /// matplotlib's magma colour map at nine control points, linearly interpolated; t in [0, 1].
    static func magma(_ t: Float) -> (UInt8, UInt8, UInt8) {
        let stops: [(Float, Float, Float)] = [
            (0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122),
            (229, 80, 100), (251, 135, 97), (254, 194, 135), (252, 253, 191),
        ]
        let x = max(0, min(1, t.isFinite ? t : 0)) * Float(stops.count - 1)
        let i = min(Int(x), stops.count - 2)
        let w = x - Float(i)
        let a = stops[i], b = stops[i + 1]
        return (UInt8(a.0 + (b.0 - a.0) * w), UInt8(a.1 + (b.1 - a.1) * w), UInt8(a.2 + (b.2 - a.2) * w))
    }
}
