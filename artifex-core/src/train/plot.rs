//! `loss.png`: the loss curves of a run (train and eval), drawn with `plotters` into a pixel
//! buffer (text from an embedded DejaVu Sans, so no system fonts are needed) and written as
//! PNG atomically.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use super::History;
use crate::{Result, TrainError};

const WIDTH: u32 = 900;
const HEIGHT: u32 = 540;
const FONT: &str = "sans-serif";

/// Named curves of `(step, value)` points: every metric whose name ends in `loss`, per split
/// (`train loss`, `eval loss`, `train d_loss`, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossCurves {
    /// Curve label -> points in step order.
    pub curves: BTreeMap<String, Vec<(u64, f64)>>,
}

impl LossCurves {
    /// The loss curves of a `metrics.jsonl` (every line of every run segment, so a resumed run
    /// plots whole). Lines that are not JSON objects with a `step` are skipped.
    pub fn from_metrics_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| crate::CheckpointError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut out = Self::default();
        for line in text.lines() {
            let Ok(serde_json::Value::Object(obj)) = serde_json::from_str(line) else {
                continue;
            };
            let Some(step) = obj.get("step").and_then(|s| s.as_u64()) else {
                continue;
            };
            let split = obj.get("split").and_then(|s| s.as_str()).unwrap_or("train");
            for (name, value) in &obj {
                if let (true, Some(v)) = (name.ends_with("loss"), value.as_f64()) {
                    out.push(&format!("{split} {name}"), step, v);
                }
            }
        }
        Ok(out)
    }

    /// The loss curves of one `fit` call.
    pub fn from_history(history: &History) -> Self {
        let mut out = Self::default();
        for (split, records) in [("train", &history.train), ("eval", &history.eval)] {
            for record in records {
                for (name, v) in &record.metrics {
                    if name.ends_with("loss") {
                        out.push(&format!("{split} {name}"), record.step, *v);
                    }
                }
            }
        }
        out
    }

    fn push(&mut self, label: &str, step: u64, value: f64) {
        if value.is_finite() {
            self.curves
                .entry(label.to_string())
                .or_default()
                .push((step, value));
        }
    }

    /// Draws the curves (log-scale y when every value is positive) and writes a PNG.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let fail = |reason: String| TrainError::Plot {
            path: path.display().to_string(),
            reason,
        };
        let points = self.curves.values().flatten();
        let (mut x_max, mut y_min, mut y_max) = (1u64, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in points {
            x_max = x_max.max(x);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
        if !y_min.is_finite() {
            return Err(fail("no loss values to plot".into()).into());
        }
        if y_max <= y_min {
            y_max = y_min + y_min.abs().max(1e-3);
        }
        let mut pixels = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
        let log_scale = y_min > 0.0;
        draw(&self.curves, &mut pixels, x_max, (y_min, y_max), log_scale).map_err(fail)?;
        let image = image::RgbImage::from_raw(WIDTH, HEIGHT, pixels)
            .ok_or_else(|| fail("pixel buffer size".into()))?;
        crate::checkpoint::write_atomically_with(path, false, |tmp| {
            image
                .save_with_format(tmp, image::ImageFormat::Png)
                .map_err(std::io::Error::other)
        })
    }
}

/// Redraws `png` from `metrics_jsonl` (what the trainers call after each evaluation).
pub fn plot_metrics_file(metrics_jsonl: &Path, png: &Path) -> Result<()> {
    LossCurves::from_metrics_file(metrics_jsonl)?.save_png(png)
}

fn register_font() -> std::result::Result<(), String> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "the embedded font could not be read".to_string())
        })
        .clone()
}

fn draw(
    curves: &BTreeMap<String, Vec<(u64, f64)>>,
    pixels: &mut [u8],
    x_max: u64,
    (y_min, y_max): (f64, f64),
    log_scale: bool,
) -> std::result::Result<(), String> {
    register_font()?;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption("loss", (FONT, 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64);
    let x_range = 0u64..x_max;
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    macro_rules! plot_on {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("step")
                .label_style((FONT, 14))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, (label, points)) in curves.iter().enumerate() {
                let color = palette[i % palette.len()];
                let width = if label.starts_with("eval") { 3 } else { 1 };
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        color.stroke_width(width),
                    ))
                    .map_err(|e| err(&e))?
                    .label(label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                    });
            }
            chart
                .configure_series_labels()
                .label_font((FONT, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }
    if log_scale {
        let y = (y_min * 0.95..y_max * 1.05).log_scale();
        plot_on!(builder
            .build_cartesian_2d(x_range, y)
            .map_err(|e| err(&e))?);
    } else {
        let pad = (y_max - y_min) * 0.05;
        plot_on!(builder
            .build_cartesian_2d(x_range, y_min - pad..y_max + pad)
            .map_err(|e| err(&e))?);
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_come_from_every_loss_metric_of_both_splits() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("artifex-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let log = dir.join("metrics.jsonl");
        let mut lines = String::new();
        for step in 1..=50u64 {
            let loss = 1.0 / step as f64;
            lines += &format!(
                "{{\"step\":{step},\"split\":\"train\",\"loss\":{loss},\"kl_loss\":{},\"lr\":0.001}}\n",
                loss / 2.0
            );
            if step % 10 == 0 {
                lines += &format!(
                    "{{\"step\":{step},\"split\":\"eval\",\"loss\":{}}}\n",
                    loss * 1.1
                );
            }
        }
        lines += "not json\n";
        std::fs::write(&log, lines).expect("write");
        let curves = LossCurves::from_metrics_file(&log)?;
        let labels: Vec<&str> = curves.curves.keys().map(String::as_str).collect();
        assert_eq!(labels, ["eval loss", "train kl_loss", "train loss"]);
        assert_eq!(curves.curves["train loss"].len(), 50);
        let (step, value) = curves.curves["eval loss"][4];
        // serde_json's default float parsing may differ from Rust's in the last bit.
        assert!(step == 50 && (value - 0.022).abs() < 1e-15, "{value}");

        let png = dir.join("loss.png");
        plot_metrics_file(&log, &png)?;
        let img = image::open(&png).expect("decode").to_rgb8();
        assert_eq!(img.dimensions(), (WIDTH, HEIGHT));
        let coloured = img.pixels().filter(|p| p.0 == [31, 119, 180]).count();
        assert!(
            coloured > 100,
            "the first curve is drawn ({coloured} pixels)"
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn nothing_to_plot_is_an_error_not_a_blank_image() {
        let err = LossCurves::default()
            .save_png(Path::new("/nonexistent/loss.png"))
            .expect_err("empty");
        assert!(err.to_string().contains("no loss values"), "{err}");
    }
}
