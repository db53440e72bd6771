//! Minimal SVG line/scatter charts (no dependency): axes with rounded ticks, a legend, and one
//! polyline or set of dots per series.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Line,
    Dots,
    LineAndDots,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub style: Style,
    pub points: Vec<(f64, f64)>,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Logarithmic y axis (latencies spanning orders of magnitude).
    pub log_y: bool,
    pub series: Vec<Series>,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;

/// Tick step: 1, 2 or 5 times a power of ten, giving about `target` ticks over `span`.
fn nice_step(span: f64, target: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let residual = raw / magnitude;
    let nice = if residual < 1.5 {
        1.0
    } else if residual < 3.5 {
        2.0
    } else if residual < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn format_tick(value: f64, step: f64) -> String {
    if step >= 1.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        let decimals = (-step.log10().floor()) as usize;
        format!("{value:.decimals$}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart<'_> {
    pub fn render(&self) -> String {
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
            .collect();
        let (mut x_min, mut x_max) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, _)| {
                (lo.min(*x), hi.max(*x))
            });
        let y_max_data = points.iter().fold(0.0f64, |hi, (_, y)| hi.max(*y));
        if !x_min.is_finite() {
            (x_min, x_max) = (0.0, 1.0);
        }
        if x_max <= x_min {
            x_max = x_min + 1.0;
        }
        let x_step = nice_step(x_max - x_min, 8.0);
        let x_lo = (x_min / x_step).floor() * x_step;
        let x_hi = (x_max / x_step).ceil() * x_step;
        let y_step = nice_step(y_max_data.max(1e-9), 6.0);
        let y_hi = ((y_max_data / y_step).ceil() * y_step).max(y_step);
        // Log axis: whole decades around the data.
        let y_min_data = points.iter().fold(f64::INFINITY, |lo, (_, y)| lo.min(*y));
        let decade_lo = if y_min_data.is_finite() {
            y_min_data.log10().floor()
        } else {
            0.0
        };
        let decade_hi = (y_max_data.max(1e-9).log10().ceil()).max(decade_lo + 1.0);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w;
        let log_y = self.log_y;
        let sy = |y: f64| {
            let fraction = if log_y {
                (y.max(1e-12).log10() - decade_lo) / (decade_hi - decade_lo)
            } else {
                y / y_hi
            };
            TOP + plot_h - fraction * plot_h
        };

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            WIDTH / 2.0,
            escape(self.title)
        );
        // Grid and ticks.
        let y_ticks: Vec<(f64, String)> = if log_y {
            let mut ticks = Vec::new();
            let mut decade = decade_lo;
            while decade <= decade_hi + 0.5 {
                for multiple in [1.0, 2.0, 5.0] {
                    let value = multiple * 10f64.powf(decade);
                    if value.log10() <= decade_hi + 1e-9 {
                        let label = if value >= 1.0 {
                            format!("{value:.0}")
                        } else {
                            format!("{value}")
                        };
                        ticks.push((value, label));
                    }
                }
                decade += 1.0;
            }
            ticks
        } else {
            let mut ticks = Vec::new();
            let mut y = 0.0;
            while y <= y_hi + y_step / 2.0 {
                ticks.push((y, format_tick(y, y_step)));
                y += y_step;
            }
            ticks
        };
        for (y, label) in &y_ticks {
            let py = sy(*y);
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e3e3e3"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                py + 4.0,
            );
        }
        let mut x = x_lo;
        while x <= x_hi + x_step / 2.0 {
            let px = sx(x);
            let _ = writeln!(
                svg,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#f0f0f0"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 16.0,
                format_tick(x, x_step)
            );
            x += x_step;
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 14.0,
            escape(self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(self.y_label)
        );
        for series in &self.series {
            let pts: Vec<(f64, f64)> = series
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
                .collect();
            if matches!(series.style, Style::Line | Style::LineAndDots) && pts.len() > 1 {
                let path: Vec<String> = pts
                    .iter()
                    .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                    .collect();
                let _ = writeln!(
                    svg,
                    r#"<polyline fill="none" stroke="{}" stroke-width="1.8" points="{}"/>"#,
                    series.color,
                    path.join(" ")
                );
            }
            if matches!(series.style, Style::Dots | Style::LineAndDots) || pts.len() == 1 {
                for (x, y) in &pts {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.8" fill="{}"/>"#,
                        sx(*x),
                        sy(*y),
                        series.color
                    );
                }
            }
        }
        // Legend, top left inside the plot, on a white box.
        let longest = self
            .series
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0) as f64;
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="white" fill-opacity="0.85" stroke="#ccc"/>"##,
            LEFT + 4.0,
            TOP + 4.0,
            longest * 6.6 + 34.0,
            self.series.len() as f64 * 16.0 + 6.0
        );
        for (i, series) in self.series.iter().enumerate() {
            let ly = TOP + 16.0 + i as f64 * 16.0;
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="12" height="4" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                LEFT + 10.0,
                ly - 6.0,
                series.color,
                LEFT + 28.0,
                ly,
                escape(&series.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_wellformed_chart() {
        let chart = Chart {
            title: "a <b>",
            x_label: "x",
            y_label: "y",
            log_y: false,
            series: vec![Series {
                name: "s".into(),
                color: "#1f77b4",
                style: Style::LineAndDots,
                points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, f64::NAN)],
            }],
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt;b&gt;"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert_eq!(nice_step(100.0, 5.0), 20.0);
        let log = Chart {
            log_y: true,
            series: vec![Series {
                name: "l".into(),
                color: "#000",
                style: Style::Dots,
                points: vec![(0.0, 0.5), (1.0, 3000.0), (2.0, 0.0)],
            }],
            ..chart
        };
        let svg = log.render();
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(">1000<") && svg.contains(">0.1<"));
    }
}
