//! The Overview's chart, drawn as SVG by hotline: registrations, calls and security events of
//! the last 24 hours, in 15-minute buckets, one line each. No script, no fetch.

use std::fmt::Write as _;

use crate::core::history::Minute;

/// Minutes per point of the chart.
const BUCKET: usize = 15;

const WIDTH: usize = 960;
const HEIGHT: usize = 200;
const TOP: usize = 24;

/// Reads one series from a minute's counts.
type Read = fn(&Minute) -> u32;

/// The series: name, colour, and how to read it from a minute.
const SERIES: [(&str, &str, Read); 3] = [
    ("registrations", "#457b9d", |m| m.registrations),
    ("calls", "#2a9d8f", |m| m.calls),
    ("security events", "#e63946", |m| m.security),
];

/// An SVG of `minutes` (oldest first).
pub fn day(minutes: &[Minute]) -> String {
    let buckets: Vec<[u32; 3]> = minutes
        .chunks(BUCKET)
        .map(|chunk| SERIES.map(|(_, _, read)| chunk.iter().map(read).sum()))
        .collect();
    let peak = buckets.iter().flatten().copied().max().unwrap_or(0).max(1);
    let step = WIDTH as f64 / buckets.len().saturating_sub(1).max(1) as f64;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"The last 24 hours\" \
         xmlns=\"http://www.w3.org/2000/svg\">"
    );
    let _ = write!(
        svg,
        "<line x1=\"0\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\" stroke=\"#999\"/>\
         <text x=\"{WIDTH}\" y=\"14\" text-anchor=\"end\" font-size=\"13\">peak {peak} per {BUCKET} min</text>"
    );
    for (index, (name, colour, _)) in SERIES.iter().enumerate() {
        let points: Vec<String> = buckets
            .iter()
            .enumerate()
            .map(|(i, values)| {
                let y = HEIGHT as f64 - values[index] as f64 * (HEIGHT - TOP) as f64 / peak as f64;
                format!("{:.1},{y:.1}", i as f64 * step)
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{}\" y=\"14\" fill=\"{colour}\" font-size=\"13\">{name}</text>",
            points.join(" "),
            4 + index * 130
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::history::MINUTES;

    #[test]
    fn a_day_is_96_points_per_series_scaled_to_the_peak() {
        let mut minutes = vec![Minute::default(); MINUTES];
        minutes[MINUTES - 1].calls = 4;
        let svg = day(&minutes);
        assert_eq!(svg.matches("<polyline").count(), 3);
        let calls = svg.split("<polyline").nth(2).unwrap();
        let points = calls
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split(' ').count(), MINUTES / BUCKET);
        assert!(points.ends_with(&format!("960.0,{TOP}.0")), "{points}");
        assert!(svg.contains("peak 4 per 15 min"), "{svg}");
        assert!(day(&vec![Minute::default(); MINUTES]).contains("peak 1 per"));
    }
}
