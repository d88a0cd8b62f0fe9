//! The latency distributions as an SVG chart.

use std::path::Path;

use super::model::{human, Measure, Report};

impl Report {
    /// Latency distributions (CDF, log-scale ns) of every latency row.
    pub fn write_plot(&self, path: &Path) -> Result<(), String> {
        use plotters::prelude::*;
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let distributions: Vec<(String, &[f64])> = self
            .results
            .iter()
            .filter_map(|r| match &r.measure {
                Measure::Latency(l) => Some((
                    format!("{} {}", r.id.name(), human(r.id.size())),
                    &l.sorted_ns[..],
                )),
                Measure::Throughput(_) => None,
            })
            .collect();
        let (lo, hi) = distributions
            .iter()
            .flat_map(|(_, v)| [v[0], v[v.len() - 1]])
            .fold((f64::MAX, 1.0f64), |(a, b), x| (a.min(x), b.max(x)));
        let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("one-way latency, two processes (CDF)", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((lo.max(1.0) * 0.8..hi * 1.2).log_scale(), 0.0..1.0)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("ns (log scale)")
            .y_desc("fraction of messages")
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (label, v)) in distributions.into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            // A few hundred points draw the curve; a point per sample
            // would make a file of megabytes.
            let step = (v.len() / 400).max(1);
            let pts = v
                .iter()
                .enumerate()
                .step_by(step)
                .map(|(k, &x)| (x.max(lo.max(1.0)), k as f64 / v.len() as f64));
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))
    }
}
