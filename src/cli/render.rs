//! What people see: the live line per node while a run goes, and the
//! summary table after it.

use super::*;

/// One spinner per node, finished with its status as events arrive.
pub(super) async fn progress_display(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    p: Arc<Pipeline>,
    show: bool,
) {
    let multi = MultiProgress::with_draw_target(if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let width = p.nodes.iter().map(|n| n.id.len()).max().unwrap_or(4).max(4);
    let style = ProgressStyle::with_template("{spinner} {msg}").unwrap();
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    for n in &p.nodes {
        let b = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
        b.set_message(format!("{:<width$}  pending", n.id));
        bars.insert(n.id.clone(), b);
    }
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::NodeStarted { node_id } => {
                if let Some(b) = bars.get(&node_id) {
                    b.enable_steady_tick(Duration::from_millis(100));
                    b.set_message(format!("{node_id:<width$}  running"));
                }
            }
            Event::NodeFinished(r) => {
                if let Some(b) = bars.get(&r.node_id) {
                    let mark = match r.status {
                        NodeStatus::Succeeded => "✓",
                        NodeStatus::Cached => "●",
                        NodeStatus::Failed => "✗",
                        _ => "-",
                    };
                    b.set_style(ProgressStyle::with_template("{msg}").unwrap());
                    b.finish_with_message(format!(
                        "{mark} {:<width$}  {}",
                        r.node_id,
                        describe(&r)
                    ));
                }
            }
        }
    }
    for b in bars.values() {
        if !b.is_finished() {
            b.finish_and_clear();
        }
    }
    let _ = multi.clear();
}

pub(super) fn describe(r: &NodeRecord) -> String {
    let mut s = r.status.name().to_string();
    if let Some(reason) = &r.reason {
        s.push_str(&format!(" ({reason})"));
    }
    if let Some(rows) = r.rows {
        s.push_str(&format!(", {rows} rows"));
    }
    s
}

/// The table printed after a run.
pub fn summary_table(m: &RunMeta) -> String {
    let width = m
        .nodes
        .iter()
        .map(|n| n.node_id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<10} {:>10} {:>9}  {:<5}  {}\n",
        "node", "status", "rows", "time", "cache", "detail"
    );
    for n in &m.nodes {
        let rows = n.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
        let time = n
            .duration_ms
            .map(|d| format!("{d} ms"))
            .unwrap_or_else(|| "-".into());
        let cache = if n.cache_hit { "hit" } else { "-" };
        let detail = match (&n.error, &n.reason) {
            (Some(e), _) => {
                let first = e.lines().next().unwrap_or("");
                if n.handled == Some(true) {
                    format!("handled: {first}")
                } else {
                    first.to_string()
                }
            }
            (None, Some(r)) => r.clone(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:<width$}  {:<10} {:>10} {:>9}  {:<5}  {detail}\n",
            n.node_id,
            n.status.name(),
            rows,
            time,
            cache
        ));
    }
    out.push_str(&format!(
        "run {} {} in {} ms\n",
        m.run_id,
        m.status.name(),
        m.duration_ms
    ));
    if let Some(e) = &m.error {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

pub(super) fn print_summary(m: &RunMeta) {
    print!("{}", summary_table(m));
}
