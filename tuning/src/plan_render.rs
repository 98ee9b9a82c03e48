//! A [`Plan`] as Markdown, and the profile's throughput–latency curve as an
//! SVG with the planned operating point (hand-written SVG: one polyline and
//! a few labels do not need a plotting crate).

use std::fmt::Write;

use crate::plan::Plan;
use crate::profile::Profile;
use crate::workload::Workload;

pub fn markdown(plan: &Plan, profile: &Profile, w: &Workload) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Capacity plan: {:.0} msg/s, {} connections, {:.0}-byte mean, {}% headroom\n",
        w.peak_msgs_per_s,
        w.connections,
        w.mean_bytes(),
        w.headroom_pct
    );
    let _ = writeln!(
        s,
        "Profile: {} ({} cores, kernel {}), measured {} with shards = {}{}.\n",
        profile.machine.cpu_model,
        profile.machine.cores,
        profile.machine.kernel,
        profile.measured_at,
        profile.shards,
        if profile.loadgen_shares_cores {
            ", loadgen on the same cores"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "| quantity | value | from |\n|---|---|---|");
    for r in &plan.rows {
        let v = match r.value {
            Some(v) => format!("{} {}", human(v), r.unit),
            None => "unmeasured".into(),
        };
        let _ = writeln!(s, "| {} | {v} | {} |", r.name, r.from);
    }
    let _ = writeln!(s, "\n## Config\n\n| key | value | why |\n|---|---|---|");
    for c in &plan.config {
        let _ = writeln!(s, "| `{}` | {} | {} |", c.key, c.value, c.why);
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in &plan.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

fn human(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// p99 latency against rate per shard, with the operating point marked.
pub fn svg(profile: &Profile, operating_rate_per_shard: Option<f64>) -> String {
    const W: f64 = 640.0;
    const H: f64 = 360.0;
    const PAD: f64 = 56.0;
    let shards = f64::from(profile.shards.max(1));
    let pts: Vec<(f64, f64)> = profile
        .curve
        .iter()
        .map(|c| (c.rate_msgs_per_s / shards, c.p99_ms))
        .collect();
    let x_max = pts
        .iter()
        .map(|p| p.0)
        .chain(operating_rate_per_shard)
        .fold(1.0, f64::max)
        * 1.1;
    let y_max = pts
        .iter()
        .map(|p| p.1)
        .chain(Some(profile.slo_p99_ms))
        .fold(1.0, f64::max)
        * 1.1;
    let x = |v: f64| PAD + v / x_max * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - v / y_max * (H - 2.0 * PAD);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{b}" stroke="black"/>"#,
        b = H - PAD,
        r = W - PAD
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">msg/s per shard (max {:.0})</text>"#,
        W / 2.0,
        H - 16.0,
        x_max / 1.1
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">p99 ms (max {:.1})</text>"#,
        H / 2.0,
        H / 2.0,
        y_max / 1.1
    );
    let slo = y(profile.slo_p99_ms);
    let _ = writeln!(
        s,
        r#"<line x1="{PAD}" y1="{slo}" x2="{}" y2="{slo}" stroke="gray" stroke-dasharray="4"/><text x="{}" y="{}" fill="gray">SLO p99 {} ms</text>"#,
        W - PAD,
        W - PAD - 90.0,
        slo - 4.0,
        profile.slo_p99_ms
    );
    let line: Vec<String> = pts
        .iter()
        .map(|&(a, b)| format!("{:.1},{:.1}", x(a), y(b)))
        .collect();
    let _ = writeln!(
        s,
        r#"<polyline points="{}" fill="none" stroke="steelblue" stroke-width="2"/>"#,
        line.join(" ")
    );
    for &(a, b) in &pts {
        let _ = writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="steelblue"/>"#,
            x(a),
            y(b)
        );
    }
    if let Some(op) = operating_rate_per_shard {
        let _ = writeln!(
            s,
            r#"<line x1="{0:.1}" y1="{PAD}" x2="{0:.1}" y2="{1}" stroke="crimson"/><text x="{2:.1}" y="{3}" fill="crimson">planned {op:.0}/shard</text>"#,
            x(op),
            H - PAD,
            x(op) + 4.0,
            PAD + 12.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{plan, EngineSizes};
    use crate::profile::tests::fixed;

    #[test]
    fn markdown_names_every_row_and_unmeasured_figures() {
        let mut prof = fixed();
        prof.handshakes_per_cpu_s = None;
        let w = Workload::parse(
            "peak_msgs_per_s = 1000\nconnections = 10\ncores_per_node = 2\nretention_days = 1\nsizes = [{ bytes = 300, share = 1.0 }]\nstorm = { clients = 10, seconds = 1 }\n",
        )
        .unwrap();
        let p = plan(&prof, &w, &EngineSizes::from_engine_defaults());
        let md = markdown(&p, &prof, &w);
        for r in &p.rows {
            assert!(md.contains(r.name), "{} missing", r.name);
        }
        assert!(md.contains("| reconnect storm absorbed in | unmeasured |"));
        let svg = svg(&prof, p.operating_rate_per_shard);
        assert!(svg.starts_with("<svg") && svg.contains("planned 500/shard"));
    }
}
