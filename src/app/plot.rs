//! Line plots to PNG (plotters' bitmap backend, encoded with `image`).
//!
//! Text is drawn with a system TrueType font registered at run time (see [`FONT_CANDIDATES`] and
//! the `HDPF_FONT` environment variable). When no font can be found, plots are still drawn — axes,
//! grid, lines and bands, without any text — and a warning is printed once on stderr: a missing
//! font never fails a run.

use crate::core::error::{Error, Result};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

/// Standard places searched for a sans-serif TrueType font, in order, after `$HDPF_FONT`.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// The family name under which the system font is registered with plotters.
const FAMILY: &str = "sans-serif";

/// One curve: `points` `(x, y)` joined by a line, with an optional symmetric band `y ± err`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// The points, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Half-widths of a shaded band `[y − err, y + err]`, one per point.
    pub err: Option<Vec<f64>>,
}

impl Series {
    /// A series without a band.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
            err: None,
        }
    }

    /// Attach a `± err` band (one half-width per point).
    pub fn with_err(mut self, err: Vec<f64>) -> Self {
        self.err = Some(err);
        self
    }
}

/// A 2-D line chart: axes, optional log-scaled `y`, one line (and band) per [`Series`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinePlot {
    /// Caption above the chart.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Logarithmic `x` axis (non-positive values are clipped to the axis minimum).
    pub log_x: bool,
    /// Logarithmic `y` axis (non-positive values are clipped to the axis minimum).
    pub log_y: bool,
    /// The range the plotted quantity cannot leave (an accuracy in %, say): error bands and bars
    /// are clipped to it.
    pub y_bounds: Option<(f64, f64)>,
    /// The curves.
    pub series: Vec<Series>,
}

/// Series of at most this many points get a marker (and an error bar) at each point.
const MARKED_POINTS: usize = 12;

/// Line colours (Tableau 10), all readable on white.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Pixel size of one panel.
const PANEL: (u32, u32) = (640, 440);

impl LinePlot {
    /// An empty chart with the given title and axis labels.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: false,
            log_y: false,
            y_bounds: None,
            series: Vec::new(),
        }
    }

    /// `y` within [`LinePlot::y_bounds`].
    fn clip(&self, y: f64) -> f64 {
        self.y_bounds.map_or(y, |(lo, hi)| y.clamp(lo, hi))
    }

    /// Write this chart alone as a PNG of 640×440 pixels.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        save_panels_png(path, std::slice::from_ref(self), 1)
    }

    /// The `x` and `y` axes covering every point and band.
    fn axes(&self) -> Result<(Axis, Axis)> {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for s in &self.series {
            check_series(s)?;
            for (k, &(x, y)) in s.points.iter().enumerate() {
                let e = s.err.as_ref().map_or(0.0, |e| e[k].abs());
                xs.push(x);
                ys.extend([self.clip(y - e), self.clip(y + e)]);
            }
        }
        Ok((Axis::fit(&xs, self.log_x), Axis::fit(&ys, self.log_y)))
    }

    /// The corner (of the four) whose 35 % × 35 % box holds the fewest data points, for the legend.
    fn legend_corner(&self, x: &Axis, y: &Axis) -> SeriesLabelPosition {
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| &s.points)
            .map(|&(a, b)| (x.unit(a), y.unit(b)))
            .collect();
        let corners = [
            (SeriesLabelPosition::UpperRight, true, true),
            (SeriesLabelPosition::UpperLeft, false, true),
            (SeriesLabelPosition::LowerRight, true, false),
            (SeriesLabelPosition::LowerLeft, false, false),
        ];
        let inside = |&(a, b): &(f64, f64), right: bool, upper: bool| {
            (if right { a > 0.65 } else { a < 0.35 }) && (if upper { b > 0.65 } else { b < 0.35 })
        };
        corners
            .into_iter()
            .min_by_key(|&(_, r, u)| pts.iter().filter(|p| inside(p, r, u)).count())
            .map_or(SeriesLabelPosition::UpperRight, |c| c.0)
    }

    /// Draw the chart on a drawing area, with or without text.
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, text: bool) -> Result<()> {
        let (xa, ya) = self.axes()?;
        let mut builder = ChartBuilder::on(area);
        builder.margin(12);
        if text {
            builder
                .caption(&self.title, (FAMILY, 20))
                .x_label_area_size(40)
                .y_label_area_size(64);
        } else {
            builder.x_label_area_size(4).y_label_area_size(4);
        }
        let mut chart = builder.build_cartesian_2d(xa, ya).map_err(plot_err)?;
        if text {
            chart
                .configure_mesh()
                .light_line_style(WHITE.mix(0.0))
                .bold_line_style(BLACK.mix(0.12))
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .label_style((FAMILY, 14))
                .draw()
                .map_err(plot_err)?;
        } else {
            // plotters' mesh measures label text even with no labels: draw just a frame.
            let area = chart.plotting_area().strip_coord_spec();
            let (w, h) = area.dim_in_pixel();
            let frame = Rectangle::new(
                [(0, 0), (w as i32 - 1, h as i32 - 1)],
                BLACK.stroke_width(1),
            );
            area.draw(&frame).map_err(plot_err)?;
        }
        let at = |x: f64, y: f64| (xa.coord(x), ya.coord(self.clip(y)));
        for (i, s) in self.series.iter().enumerate() {
            let (r, g, b) = PALETTE[i % PALETTE.len()];
            let color = RGBColor(r, g, b).to_rgba();
            if let Some(err) = &s.err {
                let upper = s
                    .points
                    .iter()
                    .zip(err)
                    .map(|(&(x, y), e)| at(x, y + e.abs()));
                let lower = s
                    .points
                    .iter()
                    .zip(err)
                    .rev()
                    .map(|(&(x, y), e)| at(x, y - e.abs()));
                let poly: Vec<(f64, f64)> = upper.chain(lower).collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        poly,
                        color.mix(0.18).filled(),
                    )))
                    .map_err(plot_err)?;
            }
            // Few points (a study over one or two sizes) are marked, with their error as a bar:
            // a line of one point draws nothing, and a band of one point has no area.
            if s.points.len() <= MARKED_POINTS {
                let dots = s
                    .points
                    .iter()
                    .map(|&(x, y)| Circle::new(at(x, y), 4, color.filled()));
                chart.draw_series(dots).map_err(plot_err)?;
                let bars = (s.points.iter().zip(s.err.iter().flatten())).map(|(&(x, y), e)| {
                    PathElement::new(
                        vec![at(x, y - e.abs()), at(x, y + e.abs())],
                        color.stroke_width(2),
                    )
                });
                chart.draw_series(bars).map_err(plot_err)?;
            }
            let points = s.points.iter().map(|&(x, y)| at(x, y));
            let line = chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(plot_err)?;
            if text {
                line.label(s.name.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
        }
        if text && self.series.iter().any(|s| !s.name.is_empty()) {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .label_font((FAMILY, 13))
                .position(self.legend_corner(&xa, &ya))
                .draw()
                .map_err(plot_err)?;
        }
        Ok(())
    }
}

/// One axis, linear or base-10 logarithmic: data values map to drawing coordinates (`log₁₀ v` on a
/// log axis, values ≤ 0 clipped to the axis minimum).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Axis {
    log: bool,
    /// Range in drawing coordinates, padded by 5 % each side.
    lo: f64,
    hi: f64,
}

impl Axis {
    /// The axis covering `values` (positive ones only, for a log axis).
    fn fit(values: &[f64], log: bool) -> Self {
        let coords: Vec<f64> = values
            .iter()
            .filter(|&&v| !log || v > 0.0)
            .map(|&v| if log { v.log10() } else { v })
            .collect();
        let (lo, hi) = bounds(&coords).unwrap_or(if log { (-1.0, 1.0) } else { (0.0, 1.0) });
        let (lo, hi) = pad(lo, hi);
        Self { log, lo, hi }
    }

    /// Drawing coordinate of a data value.
    fn coord(&self, v: f64) -> f64 {
        if self.log {
            if v > 0.0 {
                v.log10().max(self.lo)
            } else {
                self.lo
            }
        } else {
            v
        }
    }

    /// Position of a data value across the axis, 0 at the low end and 1 at the high end.
    fn unit(&self, v: f64) -> f64 {
        (self.coord(v) - self.lo) / (self.hi - self.lo)
    }

    /// Tick positions (drawing coordinates).
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            log_ticks(10f64.powf(self.lo), 10f64.powf(self.hi))
                .into_iter()
                .map(f64::log10)
                .collect()
        } else {
            linear_ticks(self.lo, self.hi)
        }
    }

    /// Tick label of a drawing coordinate, in data units.
    fn label(&self, c: f64) -> String {
        format_tick(if self.log { 10f64.powf(c) } else { c })
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    /// Linear map of the drawing coordinate `c ∈ [lo, hi]` onto the pixel range.
    fn map(&self, c: &f64, limit: (i32, i32)) -> i32 {
        let u = (c - self.lo) / (self.hi - self.lo);
        limit.0 + (u * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks()
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, c: &f64) -> String {
        self.label(*c)
    }
}

/// Write several charts into one PNG, `cols` panels per row (rows as needed), each 640×440 pixels.
pub fn save_panels_png(path: impl AsRef<Path>, panels: &[LinePlot], cols: usize) -> Result<()> {
    let path = path.as_ref();
    if panels.is_empty() || cols == 0 {
        return Err(Error::param(
            "plot panels",
            panels.len(),
            "need at least one panel and one column",
        ));
    }
    let cols = cols.min(panels.len());
    let rows = panels.len().div_ceil(cols);
    let (w, h) = (PANEL.0 * cols as u32, PANEL.1 * rows as u32);
    let text = font_available();
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        for (panel, area) in panels.iter().zip(root.split_evenly((rows, cols))) {
            panel.draw(&area, text)?;
        }
        root.present().map_err(plot_err)?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    image::save_buffer(path, &buf, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::format(path, format!("writing PNG: {e}")))
}

/// Whether a text font is registered, registering the first one found on first call
/// (`$HDPF_FONT`, then [`FONT_CANDIDATES`]); warns once on stderr when there is none.
pub fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let env = std::env::var("HDPF_FONT").ok();
        let candidates = env.iter().map(String::as_str).chain(FONT_CANDIDATES.iter().copied());
        for path in candidates {
            let Ok(bytes) = std::fs::read(path) else { continue };
            // plotters keeps a `'static` reference to the font: leak it once per process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
        eprintln!(
            "warning: no TrueType font found (set HDPF_FONT or install DejaVuSans); plots are drawn without text"
        );
        false
    })
}

/// Error if a series has non-finite values or a band of the wrong length.
fn check_series(s: &Series) -> Result<()> {
    if let Some(err) = &s.err {
        if err.len() != s.points.len() {
            return Err(Error::Shape {
                what: format!("error band of series '{}'", s.name),
                expected: s.points.len().to_string(),
                got: err.len().to_string(),
            });
        }
    }
    let bad = s
        .points
        .iter()
        .flat_map(|&(x, y)| [x, y])
        .chain(s.err.iter().flatten().copied());
    match bad.into_iter().find(|v| !v.is_finite()) {
        Some(v) => Err(Error::param(
            format!("plot series '{}'", s.name),
            v,
            "values must be finite",
        )),
        None => Ok(()),
    }
}

/// `(min, max)` of a non-empty slice.
fn bounds(v: &[f64]) -> Option<(f64, f64)> {
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// Widen `[a, b]` by 5 % each side (by ±0.5 when `a = b`).
fn pad(a: f64, b: f64) -> (f64, f64) {
    let d = if b > a { 0.05 * (b - a) } else { 0.5 };
    (a - d, b + d)
}

/// About six evenly spaced ticks on `[lo, hi]` at multiples of `{1, 2, 5}·10^k`.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|d| d * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Ticks for a log axis on `[lo, hi]`: `{1, 2, 5}·10^k` inside the range; only `10^k` when that
/// gives more than twelve, every `d·10^k` (`d = 1..9`) when it gives fewer than four.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let in_range = |mults: &[f64]| -> Vec<f64> {
        let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (k0..=k1)
            .flat_map(|k| mults.iter().map(move |d| d * 10f64.powi(k)))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    let coarse = in_range(&[1.0, 2.0, 5.0]);
    if coarse.len() > 12 {
        in_range(&[1.0])
    } else if coarse.len() >= 4 {
        coarse
    } else {
        in_range(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    }
}

/// Tick label with three significant figures, switching to scientific notation outside [1e−3, 1e4).
fn format_tick(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e4).contains(&a) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Map any plotters drawing error to ours.
fn plot_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::Other(format!("plot drawing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_plot(log_y: bool) -> LinePlot {
        let mut p = LinePlot::new("KL vs iteration", "iteration", "KL");
        p.log_y = log_y;
        let a: Vec<(f64, f64)> = (0..50)
            .map(|t| (t as f64, 100.0 / (t as f64 + 1.0)))
            .collect();
        let b: Vec<(f64, f64)> = (0..50)
            .map(|t| (t as f64, 20.0 + (t as f64).sin()))
            .collect();
        p.series.push(Series::new("mcl", a).with_err(vec![5.0; 50]));
        p.series.push(Series::new("rfpf", b));
        p
    }

    /// Decode a PNG and count pixels that are not the white background.
    fn ink(path: &Path) -> (u32, u32, usize) {
        let img = image::open(path).expect("decodable PNG").to_rgb8();
        let n = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        (img.width(), img.height(), n)
    }

    #[test]
    fn writes_a_decodable_png_with_ink() {
        let dir = crate::core::scratch::ScratchDir::new("plot");
        let path = dir.join("single.png");
        sample_plot(true).save_png(&path).unwrap();
        let (w, h, n) = ink(&path);
        assert_eq!((w, h), PANEL);
        // Axes, grid and two curves cover far more than 1 % of the pixels.
        assert!(
            n as f64 > 0.01 * (w * h) as f64,
            "only {n} non-background pixels"
        );

        let panels = [sample_plot(true), sample_plot(false), sample_plot(false)];
        let multi = dir.join("multi.png");
        save_panels_png(&multi, &panels, 2).unwrap();
        let (w, h, _) = ink(&multi);
        assert_eq!((w, h), (2 * PANEL.0, 2 * PANEL.1));
    }

    /// A study over one size gives series of one point: each is drawn (a marker), where a line
    /// of one point left the plot empty.
    #[test]
    fn a_series_of_one_point_is_drawn() {
        let dir = crate::core::scratch::ScratchDir::new("plot-one");
        let path = dir.join("one.png");
        let mut p = LinePlot::new("one size", "particles", "RMSE");
        p.series
            .push(Series::new("rfpf", vec![(100.0, 1.2)]).with_err(vec![0.1]));
        p.save_png(&path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        let (r, g, b) = PALETTE[0];
        let hits = img.pixels().filter(|px| px.0 == [r, g, b]).count();
        assert!(hits > 20, "{hits} pixels of the series' colour");
    }

    /// An accuracy's ± std band stops at 100 % (it reached above it in learn's plot).
    #[test]
    fn bands_stay_within_the_bounds() {
        let mut p = LinePlot::new("acc", "tasks", "%");
        let points = vec![(1.0, 99.0), (2.0, 60.0)];
        p.series
            .push(Series::new("wpf", points).with_err(vec![10.0, 10.0]));
        let top = |p: &LinePlot| p.axes().unwrap().1.range().end;
        let free = top(&p);
        p.y_bounds = Some((0.0, 100.0));
        let bounded = top(&p);
        // 50..109 padded by 5 % reaches 111.95; 50..100 reaches 102.5.
        assert!(free > 111.0 && bounded < 103.0, "{free} {bounded}");
    }

    #[test]
    fn draws_without_text() {
        // The no-font path: nothing touches the font registry, and lines are still drawn.
        let (w, h) = PANEL;
        let mut buf = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            root.fill(&WHITE).unwrap();
            sample_plot(true).draw(&root, false).unwrap();
            root.present().unwrap();
        }
        let ink = buf.chunks(3).filter(|p| p != &[255, 255, 255]).count();
        assert!(ink > 1000, "only {ink} non-background pixels");
    }

    #[test]
    fn rejects_bad_series() {
        let mut p = sample_plot(false);
        p.series[1].err = Some(vec![1.0; 3]);
        assert!(matches!(p.axes(), Err(Error::Shape { .. })));
        let mut p = sample_plot(false);
        p.series[0].points[3].1 = f64::NAN;
        assert!(p.axes().unwrap_err().to_string().contains("mcl"));
        assert!(save_panels_png("/nonexistent/x.png", &[], 1).is_err());
    }

    #[test]
    fn log_ticks_cover_short_and_long_ranges() {
        assert_eq!(
            log_ticks(15.0, 160.0),
            vec![20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
        );
        assert_eq!(
            log_ticks(0.5, 300.0),
            vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0]
        );
    }

    #[test]
    fn linear_ticks_are_round() {
        assert_eq!(
            linear_ticks(-2.45, 51.45),
            vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
        );
        let a = Axis::fit(&[1.0, 1000.0], true);
        assert!((a.unit(1.0) - 0.05 / 1.1).abs() < 1e-12 && a.coord(-1.0) == a.lo);
    }

    #[test]
    fn tick_format() {
        assert_eq!(format_tick(0.5), "0.5");
        assert_eq!(format_tick(20.0), "20");
        assert_eq!(format_tick(1e5), "1.0e5");
    }
}
