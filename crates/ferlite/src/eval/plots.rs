//! PNG plots of an evaluation: the confusion matrix as a heat map, the ROC curves and the
//! calibration (reliability) diagram.
//! Rendered with plotters into memory and written with `image`; the font ships inside the binary
//! (DejaVu Sans, see `assets/`), so plots look the same on a machine with no fonts installed.

use super::metrics::{Calibration, RocCurve};
use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

pub(crate) const FONT: &str = "sans-serif";
static REGISTER_FONT: Once = Once::new();

pub(crate) fn ensure_font() {
    REGISTER_FONT.call_once(|| {
        // The font is compiled in; failure here means the asset itself is broken.
        plotters::style::register_font(FONT, FontStyle::Normal, include_bytes!("../../../../assets/DejaVuSans.ttf")).unwrap_or_else(|_| panic!("embedded DejaVuSans.ttf is not a valid font"));
    });
}

/// Renders with `draw` into a `width x height` RGB buffer and saves it as PNG.
fn render_png(path: &Path, (width, height): (u32, u32), draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>) -> Result<()> {
    ensure_font();
    let mut buf = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        draw(&root)?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    let img = image::RgbImage::from_raw(width, height, buf).context("plot buffer has the wrong size")?;
    img.save(path).with_context(|| format!("{}: cannot write plot", path.display()))
}

/// Heat map of the row-normalised confusion matrix, each cell labelled with its count and share.
pub fn confusion_matrix_png(path: &Path, classes: &[&str], counts: &[Vec<usize>], title: &str) -> Result<()> {
    let k = classes.len();
    render_png(path, (900, 820), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 24))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(90)
            // A segmented range `0..n` has n + 1 segments; `0..k - 1` gives one per class.
            .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())
            .map_err(|e| anyhow!("{e}"))?;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < k => classes[*i].to_string(),
            _ => String::new(),
        };
        // Row 0 at the top, as confusion matrices are read.
        let row_label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < k => classes[k - 1 - *i].to_string(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .x_labels(k)
            .y_labels(k)
            .x_label_formatter(&label)
            .y_label_formatter(&row_label)
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 18))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (t, row) in counts.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let y = k - 1 - t;
                let color = blue_scale(share);
                chart
                    .draw_series(std::iter::once(Rectangle::new([(SegmentValue::Exact(p), SegmentValue::Exact(y)), (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1))], color.filled())))
                    .map_err(|e| anyhow!("{e}"))?;
                let text_color = if share > 0.5 { WHITE } else { BLACK };
                let style = TextStyle::from((FONT, 15).into_font()).color(&text_color).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ));
                chart
                    .draw_series(std::iter::once(Text::new(format!("{count} ({:.0}%)", share * 100.0), (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)), style)))
                    .map_err(|e| anyhow!("{e}"))?;
            }
        }
        Ok(())
    })
}

/// White (0) to dark blue (1).
fn blue_scale(v: f64) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * v) as u8;
    RGBColor(lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0))
}

/// One-vs-rest ROC curve per class plus the micro average, AUC in the legend.
pub fn roc_png(path: &Path, classes: &[&str], curves: &[RocCurve], micro: &RocCurve, title: &str) -> Result<()> {
    render_png(path, (900, 800), |root| {
        let mut chart = rates_chart(root, title, ("false positive rate", "true positive rate"), 1.0)?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3).stroke_width(1)))
            .map_err(|e| anyhow!("{e}"))?;
        let auc_text = |a: Option<f64>| a.map_or("n/a".to_string(), |a| format!("{a:.3}"));
        let series = classes.iter().zip(curves).map(|(name, c)| (format!("{name} (AUC {})", auc_text(c.auc)), c, 2)).chain(std::iter::once((format!("micro-average (AUC {})", auc_text(micro.auc)), micro, 3)));
        for (i, (label, curve, width)) in series.enumerate() {
            let color = if i < classes.len() { crate::annotate::class_color(i).to_rgba() } else { BLACK.to_rgba() };
            let points: Vec<(f64, f64)> = curve.fpr.iter().cloned().zip(curve.tpr.iter().cloned()).collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(width)))
                .map_err(|e| anyhow!("{e}"))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// Reliability diagram: per confidence bin, the share right (bar) against the diagonal a calibrated
/// model would follow, the bin's mean confidence (dot) and how many faces it holds (above the bar).
pub fn calibration_png(path: &Path, calibration: &Calibration, title: &str) -> Result<()> {
    render_png(path, (800, 800), |root| {
        let caption = format!("{title} (ECE {:.3})", calibration.ece);
        // Room above 1.0 for the count over a full bar.
        let mut chart = rates_chart(root, &caption, ("confidence of the top class", "share of those faces right"), 1.05)?;
        let bar = RGBColor(66, 133, 244);
        let filled = calibration.bins.iter().filter_map(|b| Some((b, b.accuracy?, b.mean_confidence?)));
        for (b, accuracy, confidence) in filled {
            let (x0, x1) = (b.from + 0.005, b.to - 0.005);
            chart.draw_series([Rectangle::new([(x0, 0.0), (x1, accuracy)], bar.mix(0.8).filled())]).map_err(|e| anyhow!("{e}"))?;
            chart.draw_series([Circle::new((confidence, accuracy), 5, BLACK.filled())]).map_err(|e| anyhow!("{e}"))?;
            chart
                .draw_series([Text::new(b.faces.to_string(), ((x0 + x1) / 2.0 - 0.025, accuracy + 0.035), (FONT, 14))])
                .map_err(|e| anyhow!("{e}"))?;
        }
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.5).stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label("calibrated")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.5).stroke_width(2)));
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(|e| anyhow!("{e}"))?
            .label("bin's mean confidence; bar: share right; number: faces")
            .legend(|(x, y)| Circle::new((x + 10, y), 5, BLACK.filled()));
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

type RatesChart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// Axes for two rates, x in 0-1 and y in 0-`y_max`, with a caption and the axis descriptions.
fn rates_chart<'a, 'b>(root: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>, caption: &str, (x_desc, y_desc): (&str, &str), y_max: f64) -> Result<RatesChart<'a, 'b>> {
    let mut chart = ChartBuilder::on(root)
        .caption(caption, (FONT, 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0f64..1.0, 0.0f64..y_max)
        .map_err(|e| anyhow!("{e}"))?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).label_style((FONT, 15)).axis_desc_style((FONT, 18)).draw().map_err(|e| anyhow!("{e}"))?;
    Ok(chart)
}

/// The labelled series' legend in a framed box at `position`.
fn draw_legend<'a, 'b: 'a>(chart: &mut RatesChart<'a, 'b>, position: SeriesLabelPosition) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.5))
        .label_font((FONT, 16))
        .draw()
        .map_err(|e| anyhow!("{e}"))
}
