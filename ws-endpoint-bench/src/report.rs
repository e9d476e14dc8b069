//! Medians, ratios and the Markdown tables the harness prints.

use std::fmt::Write as _;

/// The median of the values that are numbers (NaN is skipped); NaN if there are none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// `value` with `decimals` decimals and thousands separators; `-` for NaN.
pub fn number(value: f64, decimals: usize) -> String {
    if value.is_nan() {
        return "-".to_owned();
    }
    let text = format!("{:.*}", decimals, value.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if value < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// `value / base` as `0.97×`; `-` when either is not a number or the base is zero.
pub fn ratio(value: f64, base: f64) -> String {
    if value.is_nan() || base.is_nan() || base == 0.0 {
        return "-".to_owned();
    }
    format!("{:.2}×", value / base)
}

/// One line of the result table: a scenario's metric, with its value per server and round.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario, e.g. `64 B, W=1, 50 conns`.
    pub scenario: String,
    /// The metric, e.g. `msgs/s`.
    pub metric: String,
    /// Decimals to print.
    pub decimals: usize,
    /// Per server (in the table's column order), the value of each round.
    pub values: Vec<Vec<f64>>,
}

/// The Markdown table of medians, with each server's ratio to the server at `base`.
pub fn median_table(servers: &[&str], base: usize, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = write!(out, "| scenario | metric |");
    for s in servers {
        let _ = write!(out, " {s} |");
    }
    for (i, s) in servers.iter().enumerate() {
        if i != base {
            let _ = write!(out, " {s} / {} |", servers[base]);
        }
    }
    out.push('\n');
    let columns = 2 + servers.len() * 2 - 1;
    out.push('|');
    for i in 0..columns {
        out.push_str(if i < 2 { " --- |" } else { " ---: |" });
    }
    out.push('\n');
    let mut last_scenario = "";
    for row in rows {
        let medians: Vec<f64> = row.values.iter().map(|v| median(v)).collect();
        let scenario = if row.scenario == last_scenario {
            ""
        } else {
            &row.scenario
        };
        last_scenario = &row.scenario;
        let _ = write!(out, "| {scenario} | {} |", row.metric);
        for m in &medians {
            let _ = write!(out, " {} |", number(*m, row.decimals));
        }
        for (i, m) in medians.iter().enumerate() {
            if i != base {
                // A ratio of a few percent of others' CPU to another few says nothing.
                let cell = if row.metric.starts_with("others'") {
                    "-".to_owned()
                } else {
                    ratio(*m, medians[base])
                };
                let _ = write!(out, " {cell} |");
            }
        }
        out.push('\n');
    }
    out
}

/// The Markdown table of every round's value (to judge the spread behind each median).
pub fn rounds_table(servers: &[&str], rows: &[Row]) -> String {
    let mut out = String::from("| scenario | metric |");
    for s in servers {
        let _ = write!(out, " {s} (each round) |");
    }
    out.push_str("\n| --- | --- |");
    for _ in servers {
        out.push_str(" ---: |");
    }
    out.push('\n');
    let mut last_scenario = "";
    for row in rows {
        let scenario = if row.scenario == last_scenario {
            ""
        } else {
            &row.scenario
        };
        last_scenario = &row.scenario;
        let _ = write!(out, "| {scenario} | {} |", row.metric);
        for v in &row.values {
            let cells: Vec<String> = v.iter().map(|x| number(*x, row.decimals)).collect();
            let _ = write!(out, " {} |", cells.join(" / "));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_skip_nan() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, f64::NAN, 2.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0]), 1.5);
        assert!(median(&[f64::NAN]).is_nan());
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(number(1234567.0, 0), "1,234,567");
        assert_eq!(number(999.5, 1), "999.5");
        assert_eq!(number(-1234.25, 2), "-1,234.25");
        assert_eq!(number(f64::NAN, 0), "-");
        assert_eq!(ratio(97.0, 100.0), "0.97×");
        assert_eq!(ratio(1.0, 0.0), "-");
    }

    #[test]
    fn table_has_ratio_columns() {
        let rows = vec![Row {
            scenario: "s".into(),
            metric: "msgs/s".into(),
            decimals: 0,
            values: vec![vec![90.0], vec![100.0], vec![120.0]],
        }];
        let t = median_table(&["a", "b", "c"], 1, &rows);
        assert!(t.contains("| a / b | c / b |"), "{t}");
        assert!(
            t.contains("| s | msgs/s | 90 | 100 | 120 | 0.90× | 1.20× |"),
            "{t}"
        );
    }
}
