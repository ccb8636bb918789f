//! `mudrock lineage RUN`: a run's `lineage.json`, or its OpenLineage
//! events (`--format openlineage`, one JSON event per line), or those
//! events POSTed to an OpenLineage endpoint (`--emit URL`); and `mudrock
//! inspect lineage RUN OUTPUT [COLUMN]`: an output's columns traced back to
//! the source columns and objects they come from.

use clap::Args;

use super::*;
use crate::inspect::{Bucket, InspectError, RunRef};
use crate::model::Lineage;

#[derive(Args, Debug)]
pub struct LineageArgs {
    pub run: String,
    #[arg(long)]
    pub pipeline: Option<String>,
    /// `lineage` (the run's lineage.json) or `openlineage` (RunEvents).
    #[arg(long, default_value = "lineage")]
    pub format: String,
    /// POST the OpenLineage events here (e.g. Marquez's
    /// http://host:5000/api/v1/lineage) instead of printing them.
    #[arg(long)]
    pub emit: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub(super) async fn lineage_cmd(a: LineageArgs, config: Config) -> i32 {
    let config = effective(config, &a.store);
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let b = Bucket {
        store,
        name: config.bucket(a.store.project.as_deref()),
    };
    match lineage(&b, &a, &config).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn lineage(b: &Bucket, a: &LineageArgs, config: &Config) -> Result<(), InspectError> {
    if !["lineage", "openlineage"].contains(&a.format.as_str()) {
        return Err(InspectError::Data(format!(
            "--format {} is not one of lineage, openlineage",
            a.format
        )));
    }
    let r = b.find(&a.run, a.pipeline.as_deref()).await?;
    if a.format == "lineage" && a.emit.is_none() {
        let l = read_lineage(b, &r).await?;
        println!("{}", serde_json::to_string_pretty(&l).unwrap_or_default());
        return Ok(());
    }
    let events = crate::inspect::openlineage::for_run(b, &r).await?;
    match &a.emit {
        None => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            for e in &events {
                // A closed pipe (`| head`) ends the listing, not a panic.
                if writeln!(out, "{e}").is_err() {
                    break;
                }
            }
        }
        Some(url) => {
            let emitter = crate::service::lineage_sink::Emitter::new(url, &config.lineage)
                .map_err(|e| InspectError::Data(e.to_string()))?;
            let n = emitter
                .send_all(&events)
                .await
                .map_err(|e| InspectError::Data(e.to_string()))?;
            println!("sent {n} OpenLineage event(s) of run {}", r.run_id);
        }
    }
    Ok(())
}

/// A finished run's lineage.json.
async fn read_lineage(b: &Bucket, r: &RunRef) -> Result<Lineage, InspectError> {
    b.run(r).await?;
    let key = format!("{}lineage.json", r.prefix());
    b.json::<Lineage>(&key)
        .await?
        .ok_or_else(|| InspectError::Damaged {
            file: key,
            reason: "it is missing".into(),
        })
}

/// `inspect lineage RUN OUTPUT [COLUMN]`.
pub(super) async fn columns_view(
    b: &Bucket,
    run: &str,
    output: &str,
    column: Option<&str>,
    as_json: bool,
) -> Result<(), InspectError> {
    let r = b.find(run, None).await?;
    let l = read_lineage(b, &r).await?;
    let Some(o) = l.outputs.iter().find(|o| o.dataframe_id == output) else {
        return Err(InspectError::NoOutput {
            run: r.run_id.clone(),
            output: output.to_string(),
            have: l
                .outputs
                .iter()
                .map(|o| o.dataframe_id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let Some(cols) = &o.columns else {
        return Err(InspectError::Data(format!(
            "run {} did not record column lineage for \"{output}\" (its cache entries predate it; \
             a run with --no-cache records it)",
            r.run_id
        )));
    };
    let picked: Vec<_> = match column {
        None => cols.iter().collect(),
        Some(c) => {
            let found: Vec<_> = cols.iter().filter(|x| x.name == c).collect();
            if found.is_empty() {
                return Err(InspectError::Data(format!(
                    "output \"{output}\" has no column \"{c}\" (it has: {})",
                    cols.iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            found
        }
    };
    if as_json {
        let objects = |node: &str| -> Vec<&str> {
            l.sources
                .iter()
                .filter(|s| s.node_id == node)
                .map(|s| s.object.key.as_str())
                .collect()
        };
        let v: Vec<serde_json::Value> = picked
            .iter()
            .map(|c| {
                serde_json::json!({
                    "column": c.name,
                    "sources": c.sources.iter().map(|s| serde_json::json!({
                        "nodeId": s.node_id,
                        "column": s.column,
                        "derivation": s.derivation,
                        "objects": objects(&s.node_id),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    for c in picked {
        if c.sources.is_empty() {
            println!("{output}.{} ← (no source column)", c.name);
        }
        for s in &c.sources {
            let objects: Vec<&str> = l
                .sources
                .iter()
                .filter(|x| x.node_id == s.node_id)
                .map(|x| x.object.key.as_str())
                .collect();
            println!(
                "{output}.{} ← {}.{} ({}) [{}]",
                c.name,
                s.node_id,
                s.column,
                serde_json::to_value(s.derivation)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                objects.join(", ")
            );
        }
    }
    Ok(())
}
