//! `cargo xtask bench NAME`: benchmark rows written to `target/bench/NAME.json` and printed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::paths::Paths;

mod api;
mod pods;
mod scheduler;

/// One measured figure, optionally compared with a baseline (e.g. k3s, iptables).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchRow {
    pub metric: String,
    pub value: f64,
    pub unit: String,
    /// What the value is compared with, e.g. `k3s` or `iptables`.
    pub baseline: Option<String>,
    pub baseline_value: Option<f64>,
    /// `value / baseline_value`.
    pub ratio: Option<f64>,
}

impl BenchRow {
    pub fn new(metric: &str, value: f64, unit: &str) -> Self {
        Self {
            metric: metric.to_string(),
            value,
            unit: unit.to_string(),
            baseline: None,
            baseline_value: None,
            ratio: None,
        }
    }

    /// Adds a baseline and computes the ratio.
    pub fn against(mut self, baseline: &str, baseline_value: f64) -> Self {
        self.baseline = Some(baseline.to_string());
        self.baseline_value = Some(baseline_value);
        self.ratio = (baseline_value != 0.0).then(|| self.value / baseline_value);
        self
    }
}

pub fn bench(paths: &Paths, name: &str) -> Result<()> {
    let rows = match name {
        "api" => api::run(paths)?,
        "pods" => pods::run(paths)?,
        "scheduler" => scheduler::run(paths)?,
        other => bail!("unknown benchmark {other:?}; known: api, pods, scheduler"),
    };
    report(&paths.target(), name, &rows).map(|_| ())
}

/// Writes `<target>/bench/<name>.json` and prints the rows as a table.
pub fn report(target: &Path, name: &str, rows: &[BenchRow]) -> Result<PathBuf> {
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(rows)?)
        .with_context(|| format!("writing {}", path.display()))?;
    print!("{}", table(rows));
    println!("wrote {}", path.display());
    Ok(path)
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// The rows as an aligned text table.
pub fn table(rows: &[BenchRow]) -> String {
    let header = [
        "metric",
        "value",
        "unit",
        "baseline",
        "baseline value",
        "ratio",
    ];
    let mut cells: Vec<[String; 6]> = vec![header.map(str::to_string)];
    for r in rows {
        cells.push([
            r.metric.clone(),
            fmt_num(r.value),
            r.unit.clone(),
            r.baseline.clone().unwrap_or_else(|| "-".into()),
            r.baseline_value.map(fmt_num).unwrap_or_else(|| "-".into()),
            r.ratio
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json_and_an_aligned_table() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            BenchRow::new("pod startup p50", 120.0, "ms").against("k3s", 240.0),
            BenchRow::new("pods/s", 35.5, "1/s"),
        ];
        let path = report(dir.path(), "pods", &rows).unwrap();
        assert_eq!(path, dir.path().join("bench/pods.json"));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json[0]["ratio"], 0.5);
        assert_eq!(json[0]["baseline"], "k3s");
        assert_eq!(json[1]["baseline"], serde_json::Value::Null);
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("pod startup p50  120 "), "{t}");
        assert_eq!(lines[0].find("unit"), lines[1].find("ms"), "{t}");
        assert!(lines[1].ends_with("0.50x"), "{t}");
        assert_eq!(lines[0].find("value"), lines[1].find("120"));
    }
}
