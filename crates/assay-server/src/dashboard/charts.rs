//! Inline SVG charts, built as text: a sparkline of durations, one bar per execution, pass rate
//! per day. Colours come from the CSS classes `s-<status>`, so dark and light themes both apply.
//! Every piece of text in them goes through [`esc`].

use std::collections::BTreeMap;
use std::fmt::Write;

use assay_store::{ExecutionStatus, RunPoint};

use super::format;

/// Escape text for HTML and SVG.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn title(run: &RunPoint) -> String {
    esc(&format!(
        "{} · {} · {}",
        run.name,
        run.status.as_str(),
        format::duration(run.duration_ms())
    ))
}

/// Durations of `runs` (newest first, as the store gives them) as a small line with a dot per
/// run coloured by status, oldest on the left.
pub fn sparkline(runs: &[RunPoint]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    if runs.is_empty() {
        return String::new();
    }
    let max = runs
        .iter()
        .map(RunPoint::duration_ms)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = if runs.len() > 1 {
        (W - 6.0) / (runs.len() - 1) as f64
    } else {
        0.0
    };
    let points: Vec<(f64, f64, &RunPoint)> = runs
        .iter()
        .rev()
        .enumerate()
        .map(|(i, r)| {
            let x = 3.0 + i as f64 * step;
            let y = H - 3.0 - (r.duration_ms() as f64 / max) * (H - 6.0);
            (x, y, r)
        })
        .collect();
    let mut svg = format!(
        "<svg class=\"spark\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" \
         aria-label=\"duration trend of the last {} executions\">",
        runs.len()
    );
    let line: Vec<String> = points
        .iter()
        .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = write!(svg, "<polyline points=\"{}\"/>", line.join(" "));
    for (x, y, r) in &points {
        let _ = write!(
            svg,
            "<circle class=\"s-{}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.2\"><title>{}</title></circle>",
            r.status.as_str(),
            title(r)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One bar per execution (oldest on the left), height = duration, colour = status; each bar
/// links to its execution.
pub fn history_bars(runs: &[RunPoint]) -> String {
    const H: f64 = 120.0;
    const BAR: f64 = 10.0;
    const GAP: f64 = 3.0;
    if runs.is_empty() {
        return String::new();
    }
    let max = runs
        .iter()
        .map(RunPoint::duration_ms)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let width = runs.len() as f64 * (BAR + GAP);
    let mut svg = format!(
        "<svg class=\"bars\" viewBox=\"0 0 {width} {H}\" preserveAspectRatio=\"none\" \
         role=\"img\" aria-label=\"durations of the last {} executions, coloured by status\">",
        runs.len()
    );
    for (i, r) in runs.iter().rev().enumerate() {
        let h = ((r.duration_ms() as f64 / max) * (H - 2.0)).max(2.0);
        let _ = write!(
            svg,
            "<a href=\"/executions/{}\"><rect class=\"s-{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{BAR}\" \
             height=\"{h:.1}\"><title>{}</title></rect></a>",
            esc(&r.id),
            r.status.as_str(),
            i as f64 * (BAR + GAP),
            H - h,
            title(r)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One day's pass rate over ended executions.
pub struct DayRate {
    pub day: String,
    pub passed: usize,
    pub ended: usize,
}

impl DayRate {
    pub fn percent(&self) -> u32 {
        (self.passed * 100)
            .checked_div(self.ended)
            .unwrap_or(0)
            .try_into()
            .unwrap_or(0)
    }
}

/// Pass rate per UTC day over the ended ones of `runs`, oldest day first.
pub fn pass_rate_by_day(runs: &[RunPoint]) -> Vec<DayRate> {
    let mut days: BTreeMap<i64, (usize, usize)> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.status.is_terminal()) {
        let entry = days
            .entry(r.scheduled_at.div_euclid(86_400_000))
            .or_default();
        entry.1 += 1;
        if r.status == ExecutionStatus::Passed {
            entry.0 += 1;
        }
    }
    days.into_iter()
        .map(|(day, (passed, ended))| DayRate {
            day: format::time(day * 86_400_000)
                .get(..10)
                .unwrap_or_default()
                .to_string(),
            passed,
            ended,
        })
        .collect()
}

/// Pass rate per day as bars (100% = full height).
pub fn pass_rate_bars(days: &[DayRate]) -> String {
    const H: f64 = 80.0;
    const BAR: f64 = 14.0;
    const GAP: f64 = 4.0;
    if days.is_empty() {
        return String::new();
    }
    let width = days.len() as f64 * (BAR + GAP);
    let mut svg = format!(
        "<svg class=\"bars rate\" viewBox=\"0 0 {width} {H}\" preserveAspectRatio=\"none\" \
         role=\"img\" aria-label=\"pass rate per day\">"
    );
    for (i, d) in days.iter().enumerate() {
        let h = (d.percent() as f64 / 100.0 * (H - 2.0)).max(1.0);
        let _ = write!(
            svg,
            "<rect class=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{BAR}\" height=\"{h:.1}\">\
             <title>{}: {}% of {}</title></rect>",
            if d.passed == d.ended {
                "s-passed"
            } else {
                "s-failed"
            },
            i as f64 * (BAR + GAP),
            H - h,
            esc(&d.day),
            d.percent(),
            d.ended
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Share of passed executions among the ended ones of `runs`, in percent (`None` without any).
pub fn pass_rate(runs: &[RunPoint]) -> Option<u32> {
    let ended = runs.iter().filter(|r| r.status.is_terminal()).count();
    let passed = runs
        .iter()
        .filter(|r| r.status == ExecutionStatus::Passed)
        .count();
    (passed * 100).checked_div(ended).map(|p| p as u32)
}

/// Series colours of the insights charts (`g0` … `g5` in the CSS); groups past six share `g5`.
pub const SERIES: usize = 6;

/// One horizontal bar per group: its first-try pass rate (0–100%), with the number of changes
/// in the label.
pub fn rate_bars(rows: &[(String, Option<f64>, u32)]) -> String {
    const W: f64 = 420.0;
    const LABEL: f64 = 130.0;
    const ROW: f64 = 22.0;
    if rows.is_empty() {
        return String::new();
    }
    let h = rows.len() as f64 * ROW + 4.0;
    let mut svg = format!(
        "<svg class=\"rates\" viewBox=\"0 0 {W} {h}\" width=\"{W}\" height=\"{h}\" role=\"img\" \
         aria-label=\"first-try pass rate per group\">"
    );
    for (i, (key, rate, changes)) in rows.iter().enumerate() {
        let y = 2.0 + i as f64 * ROW;
        let r = rate.unwrap_or(0.0).clamp(0.0, 1.0);
        let width = (W - LABEL - 50.0) * r;
        let text = rate.map_or("–".to_string(), |r| format!("{:.0}%", r * 100.0));
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\">{}</text><rect class=\"g{}\" x=\"{LABEL}\" y=\"{y:.1}\" \
             width=\"{width:.1}\" height=\"{:.1}\"><title>{}: {} first try of {} changes</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{text}</text>",
            y + 15.0,
            esc(&clip(key, 18)),
            i.min(SERIES - 1),
            ROW - 6.0,
            esc(key),
            esc(&text),
            changes,
            LABEL + width + 4.0,
            y + 15.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One bar of a week: the series (group index), its first-try pass rate, its changes.
pub type WeekBar = (usize, f64, u32);

/// First-try pass rate per week (oldest on the left), one bar per group in each week,
/// coloured as in [`rate_bars`] (`keys` gives the order). Drawn at its own size in pixels (not
/// stretched to the page, which squashed and widened its week labels), at least wide enough
/// for each week's label.
pub fn weekly_bars(weeks: &[(String, Vec<WeekBar>)], keys: &[String]) -> String {
    const H: f64 = 120.0;
    const BAR: f64 = 14.0;
    const GAP: f64 = 18.0;
    const LABEL: f64 = 44.0;
    if weeks.is_empty() {
        return String::new();
    }
    let per_week = (keys.len().clamp(1, SERIES) as f64 * BAR).max(LABEL) + GAP;
    let width = weeks.len() as f64 * per_week;
    let height = H + 14.0;
    let mut svg = format!(
        "<svg class=\"weekly\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" \
         height=\"{height}\" role=\"img\" aria-label=\"first-try pass rate per week and group\">"
    );
    for (w, (week, bars)) in weeks.iter().enumerate() {
        let x0 = w as f64 * per_week;
        for (series, rate, changes) in bars {
            let s = (*series).min(SERIES - 1);
            let h = (rate.clamp(0.0, 1.0) * (H - 2.0)).max(2.0);
            let key = keys.get(*series).map(String::as_str).unwrap_or("");
            let _ = write!(
                svg,
                "<rect class=\"g{s}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{BAR}\" height=\"{h:.1}\">\
                 <title>week of {}: {} {:.0}% first try of {} changes</title></rect>",
                x0 + s as f64 * BAR,
                H - h,
                esc(week),
                esc(key),
                rate * 100.0,
                changes
            );
        }
        let _ = write!(
            svg,
            "<text class=\"axis\" x=\"{x0:.1}\" y=\"{:.1}\">{}</text>",
            H + 12.0,
            esc(week.get(5..).unwrap_or(week))
        );
    }
    svg.push_str("</svg>");
    svg
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: ExecutionStatus, day: i64, ms: i64) -> RunPoint {
        RunPoint {
            id: format!("id-{day}-{ms}"),
            name: "<w>-1".into(),
            number: 1,
            status,
            scheduled_at: day * 86_400_000,
            started_at: Some(day * 86_400_000),
            finished_at: Some(day * 86_400_000 + ms),
            status_at: day * 86_400_000 + ms,
        }
    }

    #[test]
    fn charts_escape_and_count() {
        let runs = vec![
            run(ExecutionStatus::Failed, 2, 300),
            run(ExecutionStatus::Passed, 1, 100),
            run(ExecutionStatus::Passed, 1, 200),
            run(ExecutionStatus::Running, 2, 50),
        ];
        assert_eq!(pass_rate(&runs), Some(66));
        let days = pass_rate_by_day(&runs);
        assert_eq!(days.len(), 2);
        assert_eq!((days[0].passed, days[0].ended), (2, 2));
        assert_eq!((days[1].passed, days[1].ended), (0, 1));
        let bars = history_bars(&runs);
        assert_eq!(bars.matches("<rect").count(), 4);
        assert!(bars.contains("&lt;w&gt;-1"));
        assert!(!bars.contains("<w>"));
        assert_eq!(sparkline(&runs).matches("<circle").count(), 4);
        assert_eq!(pass_rate(&[]), None);
    }
}
