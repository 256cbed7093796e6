//! The chart of the report: pipelined calls per second of every contender,
//! `add` above and 1 KiB `echo` below, one bar per runtime setup. An SVG
//! drawn with plotters' SVG backend (no system libraries, no fonts: the
//! viewer lays out the text).

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::contenders::Contender;
use crate::measure::{Comparison, Figures};
use crate::report::short;
use crate::runtime::Setup;

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 760;
const COLORS: [RGBColor; 2] = [RGBColor(0x2b, 0x6c, 0xb0), RGBColor(0xe0, 0x8a, 0x1e)];

type Panel = (&'static str, fn(&Figures) -> f64);

/// The x axis: one slot per contender, slot `i` centred on `i`, labelled
/// with the contender's name.
struct Slots;

impl Ranged for Slots {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let Range { start, end } = self.range();
        let share = (value - start) / (end - start);
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _: Hint) -> Vec<f64> {
        (0..Contender::ALL.len()).map(|i| i as f64).collect()
    }

    fn range(&self) -> Range<f64> {
        -0.5..Contender::ALL.len() as f64 - 0.5
    }
}

impl ValueFormatter<f64> for Slots {
    fn format(value: &f64) -> String {
        let i = value.round();
        if i < 0.0 {
            return String::new();
        }
        Contender::ALL
            .get(i as usize)
            .map_or_else(String::new, |c| c.name().to_string())
    }
}

/// The SVG text of the chart of `results` (one comparison per setup).
pub(crate) fn svg(results: &[(Setup, Comparison)], in_flight: usize) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let panels: [Panel; 2] = [
            ("pipelined `add` calls/s", |f| {
                f.pipe_add.rate.spread().median
            }),
            ("pipelined 1 KiB `echo` calls/s", |f| {
                f.pipe_echo.rate.spread().median
            }),
        ];
        let areas = root.split_evenly((panels.len(), 1));
        for (area, (title, value)) in areas.iter().zip(panels) {
            draw_panel(area, results, in_flight, title, value)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    results: &[(Setup, Comparison)],
    in_flight: usize,
    title: &str,
    value: fn(&Figures) -> f64,
) -> Result<(), String> {
    let max = results
        .iter()
        .flat_map(|(_, c)| c.figures.iter().map(|(_, f)| value(f)))
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{} over one connection, {in_flight} in flight (loopback)",
                title.replace('`', "")
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(70)
        .build_cartesian_2d(Slots, 0f64..max * 1.4)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .y_labels(8)
        .y_label_formatter(&|y| short(*y))
        .x_label_style(("sans-serif", 15))
        .y_label_style(("sans-serif", 13))
        .y_desc("calls/s")
        .draw()
        .map_err(|e| e.to_string())?;

    let bar = 0.38 / results.len().max(1) as f64 * 2.0;
    for (k, (setup, comparison)) in results.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let offset = -0.4 + k as f64 * bar;
        let bars = Contender::ALL.iter().enumerate().map(|(i, &who)| {
            let v = value(comparison.of(who));
            let x0 = i as f64 + offset + 0.02;
            Rectangle::new([(x0, 0.0), (x0 + bar - 0.04, v)], color.filled())
        });
        chart
            .draw_series(bars)
            .map_err(|e| e.to_string())?
            .label(format!("setup {setup}"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        let style = TextStyle::from(("sans-serif", 12).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        let labels = Contender::ALL.iter().enumerate().map(|(i, &who)| {
            let v = value(comparison.of(who));
            let x = i as f64 + offset + bar / 2.0;
            Text::new(short(v), (x, v + max * 0.01), style.clone())
        });
        chart.draw_series(labels).map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperMiddle)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}
