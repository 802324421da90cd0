//! The register's year at a glance for the privacy officer, as inline SVG
//! drawn on the server (no JavaScript): requests per month by kind, the
//! share answered in time per month, the median days to close, and open
//! cases by age. Each chart carries its numbers as text too (title, labels
//! and an accessible description), so a screen reader gets the same facts.

use std::collections::BTreeMap;

use chrono::{Datelike, Months, NaiveDate};

use super::register::Row;
use crate::{domain::Locale, export::escape, i18n::t};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Chart {
    pub id: &'static str,
    pub title: String,
    /// Trusted markup: every text in it is escaped here.
    pub svg: String,
}

const KINDS: [&str; 5] = ["export", "delete", "change_email", "object", "question"];
const COLOURS: [&str; 5] = ["#0b5cad", "#b3261e", "#6b4fa0", "#1e7a46", "#8a5a00"];
const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 30.0;

fn months(today: NaiveDate) -> Vec<NaiveDate> {
    let first = today.with_day(1).unwrap_or(today);
    (0..12)
        .rev()
        .filter_map(|i| first.checked_sub_months(Months::new(i)))
        .collect()
}

fn month_key(d: NaiveDate) -> (i32, u32) {
    (d.year(), d.month())
}

fn parse(d: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()
}

fn month_label(locale: Locale, d: NaiveDate) -> String {
    t(locale, &format!("staff.charts.month.{}", d.month()))
}

fn svg_open(label: &str) -> String {
    format!(
        "<svg viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" font-family=\"Arial, Helvetica, sans-serif\" font-size=\"11\"><title>{}</title>",
        escape(label),
        escape(label)
    )
}

/// Bars (stacked when several series) over the twelve months.
fn bars(
    locale: Locale,
    label: &str,
    months: &[NaiveDate],
    series: &[(String, &str, Vec<f64>)],
    unit: &str,
    max_hint: Option<f64>,
) -> String {
    let totals: Vec<f64> = (0..months.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.2.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = max_hint
        .unwrap_or_else(|| totals.iter().cloned().fold(0.0, f64::max))
        .max(1.0);
    let plot_h = H - BOTTOM - 30.0;
    let slot = (W - LEFT - 10.0) / months.len() as f64;
    let mut out = svg_open(label);
    // Axis and the top value.
    out.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#888\"/><text x=\"2\" y=\"{ty}\" fill=\"#333\">{}{}</text>",
        fmt_num(max),
        escape(unit),
        y = H - BOTTOM,
        x2 = W - 10.0,
        ty = H - BOTTOM - plot_h + 4.0
    ));
    for (i, m) in months.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let w = slot * 0.7;
        let mut y = H - BOTTOM;
        for (name, colour, values) in series {
            let v = values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let h = v / max * plot_h;
            y -= h;
            out.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{colour}\"><title>{}: {} {}</title></rect>",
                escape(name),
                month_label(locale, *m),
                fmt_num(v)
            ));
        }
        if totals[i] > 0.0 {
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#1a1a1a\">{}</text>",
                x + w / 2.0,
                y - 3.0,
                fmt_num(totals[i])
            ));
        }
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
            x + w / 2.0,
            H - BOTTOM + 14.0,
            escape(&month_label(locale, *m))
        ));
    }
    // Legend when there are several series.
    if series.len() > 1 {
        let mut lx = LEFT;
        for (name, colour, _) in series {
            out.push_str(&format!(
                "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#1a1a1a\">{}</text>",
                H - 12.0,
                lx + 14.0,
                H - 3.0,
                escape(name)
            ));
            lx += 14.0 + 7.0 * name.chars().count() as f64 + 16.0;
        }
    }
    out.push_str("</svg>");
    out
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

pub fn build(rows: &[Row], locale: Locale, today: NaiveDate) -> Vec<Chart> {
    let months = months(today);
    let index: BTreeMap<(i32, u32), usize> = months
        .iter()
        .enumerate()
        .map(|(i, m)| (month_key(*m), i))
        .collect();
    let n = months.len();

    // 1. Requests received per month, by kind.
    let mut per_kind: Vec<Vec<f64>> = vec![vec![0.0; n]; KINDS.len()];
    // 2./3. Closed requests by month received: in time, and days to close.
    let mut closed = vec![0.0; n];
    let mut in_month = vec![0.0; n];
    let mut in_deadline = vec![0.0; n];
    let mut days: Vec<Vec<i64>> = vec![Vec::new(); n];
    // 4. Open cases by age.
    let buckets = [7, 14, 30, 60, i64::MAX];
    let mut open = [0.0; 5];
    for r in rows {
        let Some(received) = parse(&r.received) else {
            continue;
        };
        if let Some(&i) = index.get(&month_key(received)) {
            if let Some(k) = KINDS.iter().position(|k| *k == r.kind) {
                per_kind[k][i] += 1.0;
            }
            if let Some(c) = parse(&r.closed) {
                closed[i] += 1.0;
                match r.timeliness {
                    "within_month" => {
                        in_month[i] += 1.0;
                        in_deadline[i] += 1.0;
                    }
                    "within_extension" => in_deadline[i] += 1.0,
                    _ => {}
                }
                days[i].push((c - received).num_days().max(0));
            }
        }
        if matches!(r.timeliness, "open" | "overdue") {
            let age = (today - received).num_days().max(0);
            if let Some(b) = buckets.iter().position(|b| age <= *b) {
                open[b] += 1.0;
            }
        }
    }
    let kind_series: Vec<(String, &str, Vec<f64>)> = KINDS
        .iter()
        .zip(COLOURS)
        .zip(per_kind)
        .map(|((k, c), v)| (t(locale, &format!("staff.kinds.{k}")), c, v))
        .collect();
    let pct = |part: &[f64]| -> Vec<f64> {
        part.iter()
            .zip(&closed)
            .map(|(p, c)| if *c > 0.0 { p / c * 100.0 } else { 0.0 })
            .collect()
    };
    let medians: Vec<f64> = days
        .iter_mut()
        .map(|d| {
            d.sort_unstable();
            match d.len() {
                0 => 0.0,
                l if l % 2 == 1 => d[l / 2] as f64,
                l => (d[l / 2 - 1] + d[l / 2]) as f64 / 2.0,
            }
        })
        .collect();

    let mut charts = Vec::new();
    let title = t(locale, "staff.charts.per_month");
    charts.push(Chart {
        id: "chart-per-month",
        svg: bars(locale, &title, &months, &kind_series, "", None),
        title,
    });
    let title = t(locale, "staff.charts.in_time");
    charts.push(Chart {
        id: "chart-in-time",
        svg: {
            // Two bars side by side read better as two charts' worth of
            // series; stacked they would add up, so show the month share and
            // the extra share within the extension.
            let month = pct(&in_month);
            let deadline = pct(&in_deadline);
            let extra: Vec<f64> = deadline.iter().zip(&month).map(|(d, m)| d - m).collect();
            bars(
                locale,
                &title,
                &months,
                &[
                    (t(locale, "staff.charts.within_month"), "#1e7a46", month),
                    (t(locale, "staff.charts.within_extension"), "#8fc9a3", extra),
                ],
                " %",
                Some(100.0),
            )
        },
        title,
    });
    let title = t(locale, "staff.charts.median_days");
    charts.push(Chart {
        id: "chart-median-days",
        svg: bars(
            locale,
            &title,
            &months,
            &[(title.clone(), "#0b5cad", medians)],
            "",
            None,
        ),
        title,
    });
    let title = t(locale, "staff.charts.open_by_age");
    let labels: Vec<String> = ["0–7", "8–14", "15–30", "31–60", "> 60"]
        .iter()
        .map(|l| format!("{l} {}", t(locale, "staff.charts.days")))
        .collect();
    charts.push(Chart {
        id: "chart-open-age",
        svg: age_bars(&title, &labels, &open),
        title,
    });
    charts
}

fn age_bars(label: &str, labels: &[String], values: &[f64]) -> String {
    let max = values.iter().cloned().fold(0.0, f64::max).max(1.0);
    let plot_h = H - BOTTOM - 30.0;
    let slot = (W - LEFT - 10.0) / values.len() as f64;
    let mut out = svg_open(label);
    out.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#888\"/>",
        y = H - BOTTOM,
        x2 = W - 10.0
    ));
    for (i, (l, v)) in labels.iter().zip(values).enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.2;
        let w = slot * 0.6;
        let h = v / max * plot_h;
        let y = H - BOTTOM - h;
        let colour = if i >= 3 { "#b3261e" } else { "#0b5cad" };
        out.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#1a1a1a\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
            x + w / 2.0,
            y - 3.0,
            fmt_num(*v),
            x + w / 2.0,
            H - BOTTOM + 14.0,
            escape(l)
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, received: &str, closed: &str, timeliness: &'static str) -> Row {
        Row {
            reference: "R-1".into(),
            kind: kind.into(),
            channel: "web".into(),
            received: received.into(),
            due: String::new(),
            extension_months: 0,
            closed: closed.into(),
            status: String::new(),
            outcome: None,
            timeliness,
        }
    }

    #[test]
    fn charts_count_what_the_rows_say() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let rows = vec![
            row("export", "2026-11-02", "2026-11-12", "within_month"),
            row("delete", "2026-11-05", "2026-12-20", "within_extension"),
            row("delete", "2026-12-01", "", "open"),
            row("question", "2026-09-01", "", "overdue"),
        ];
        let charts = build(&rows, Locale::En, today);
        assert_eq!(charts.len(), 4);
        // November: two requests, one export and one deletion.
        assert!(
            charts[0].svg.contains("Copy of data: Nov 1"),
            "{}",
            charts[0].svg
        );
        // Half answered within the month, all within the deadline.
        assert!(charts[1].svg.contains(">50<") || charts[1].svg.contains("50"));
        // Median days to close in November: 10 and 45 → 27.5.
        assert!(charts[2].svg.contains("27.5"), "{}", charts[2].svg);
        // Open by age: one 2 days old, one 93 days old.
        assert!(
            charts[3].svg.matches(">1<").count() >= 2,
            "{}",
            charts[3].svg
        );
        for c in &charts {
            assert!(c.svg.starts_with("<svg") && c.svg.ends_with("</svg>"));
            assert!(c.svg.contains("role=\"img\""));
        }
    }
}
