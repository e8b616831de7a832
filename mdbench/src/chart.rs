//! A small SVG line chart: one panel per swept parameter, throughput on
//! the y axis, one line per system. Hand-written so that the benchmark
//! needs no plotting dependency for one picture.

use std::fmt::Write;

/// One panel: a parameter, its values, and each system's rates.
pub struct Panel {
    pub title: String,
    pub x_labels: Vec<String>,
    /// (system label, rate per x value)
    pub lines: Vec<(String, Vec<f64>)>,
}

const WIDTH: f64 = 330.0;
const HEIGHT: f64 = 240.0;
const MARGIN_LEFT: f64 = 62.0;
const MARGIN_TOP: f64 = 40.0;
const PLOT_W: f64 = 240.0;
const PLOT_H: f64 = 150.0;
const COLORS: [&str; 3] = ["#d62728", "#1f77b4", "#7f7f7f"];

/// Renders the panels side by side, with a legend and a caption.
pub fn render(panels: &[Panel], caption: &str) -> String {
    let total_w = WIDTH * panels.len() as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{}" font-family="sans-serif" font-size="11">"#,
        HEIGHT + 40.0
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, panel) in panels.iter().enumerate() {
        draw_panel(&mut svg, panel, WIDTH * i as f64);
    }
    if let Some(first) = panels.first() {
        for (n, (label, _)) in first.lines.iter().enumerate() {
            let x = 20.0 + 170.0 * n as f64;
            let y = HEIGHT + 8.0;
            let color = COLORS[n % COLORS.len()];
            let _ = writeln!(
                svg,
                r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2"/>"#,
                x + 20.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}">{}</text>"#,
                x + 25.0,
                y + 4.0,
                escape(label)
            );
        }
    }
    let _ = writeln!(
        svg,
        r##"<text x="20" y="{}" fill="#555">{}</text>"##,
        HEIGHT + 30.0,
        escape(caption)
    );
    svg.push_str("</svg>\n");
    svg
}

fn draw_panel(svg: &mut String, panel: &Panel, left: f64) {
    let x0 = left + MARGIN_LEFT;
    let y0 = MARGIN_TOP + PLOT_H;
    let max = panel
        .lines
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="20" font-weight="bold">{}</text>"#,
        x0,
        escape(&panel.title)
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{x0}" y1="{MARGIN_TOP}" x2="{x0}" y2="{y0}" stroke="#000"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{x0}" y1="{y0}" x2="{}" y2="{y0}" stroke="#000"/>"##,
        x0 + PLOT_W
    );
    for k in 0..=4 {
        let value = top * k as f64 / 4.0;
        let y = y0 - PLOT_H * k as f64 / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/>"##,
            x0 + PLOT_W
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}k</text>"#,
            x0 - 4.0,
            y + 4.0,
            (value / 1000.0).round()
        );
    }
    let n = panel.x_labels.len().max(1);
    let x_at = |i: usize| x0 + PLOT_W * (i as f64 + 0.5) / n as f64;
    for (i, label) in panel.x_labels.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x_at(i),
            y0 + 14.0,
            escape(label)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">req/s</text>"##,
        left + 22.0,
        MARGIN_TOP - 8.0
    );
    for (line, (_, values)) in panel.lines.iter().enumerate() {
        let color = COLORS[line % COLORS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x_at(i), y0 - PLOT_H * v / top.max(1.0)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for p in &points {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(svg, r#"<circle cx="{x}" cy="{y}" r="2.5" fill="{color}"/>"#);
        }
    }
}

/// The smallest 1, 2 or 5 times a power of ten at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= value)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
