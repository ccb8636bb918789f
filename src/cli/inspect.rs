//! `mudrock inspect ...`: what runs left in a bucket, with no database —
//! the local store or S3 as configured (or `--store DIR`), the project's
//! bucket (`--project`, default `local`). Pipelines, runs, one run's
//! nodes, an output's schema and first rows, and a diff of two runs;
//! `--json` for every view.

use clap::{Args, Subcommand};

use super::*;
use crate::inspect::{Bucket, InspectError, diff};

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub what: InspectCommand,
}

#[derive(Subcommand, Debug)]
pub enum InspectCommand {
    /// The pipelines that have runs, with how many.
    Pipelines,
    /// A pipeline's runs, newest first: status, trigger, start, duration,
    /// nodes from cache.
    Runs { pipeline: String },
    /// One run: its nodes (status, reason, rows, time, cache hit, error).
    Run {
        run: String,
        #[arg(long)]
        pipeline: Option<String>,
    },
    /// An output of a run: its schema and first rows.
    Output {
        run: String,
        output: String,
        #[arg(long, default_value_t = 10)]
        rows: usize,
        #[arg(long)]
        pipeline: Option<String>,
    },
    /// A picture of a run (nodes coloured by status, with rows and time;
    /// edges not taken dashed), or of a pipeline file with `--file`.
    Picture {
        run: Option<String>,
        #[arg(long, conflicts_with = "run")]
        file: Option<PathBuf>,
        /// dot, mermaid, svg or png (svg and png through Graphviz).
        #[arg(long, default_value = "dot")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// An output's columns (or one) traced back to source columns and
    /// the objects they were read from.
    Lineage {
        run: String,
        output: String,
        column: Option<String>,
    },
    /// What changed between two runs (of any pipelines).
    Diff {
        run_a: String,
        run_b: String,
        /// Key columns for a row diff of changed outputs (comma-separated).
        #[arg(long, value_delimiter = ',')]
        key: Vec<String>,
        /// Rows of each kind to show.
        #[arg(long, default_value_t = 5)]
        rows: usize,
    },
}

/// The most rows `inspect output` shows.
const MAX_ROWS: usize = 1_000;

pub(super) async fn inspect_cmd(a: InspectArgs, config: Config) -> i32 {
    let config = effective(config, &a.store);
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let bucket = Bucket {
        store,
        name: config.bucket(a.store.project.as_deref()),
    };
    match view(&bucket, a.what, a.json).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

async fn view(b: &Bucket, what: InspectCommand, as_json: bool) -> Result<(), InspectError> {
    match what {
        InspectCommand::Pipelines => {
            let p = b.pipelines().await?;
            if as_json {
                json(&p);
            } else {
                for (id, runs) in p {
                    println!("{id}  {runs} run(s)");
                }
            }
        }
        InspectCommand::Runs { pipeline } => {
            let runs = b.runs(&pipeline).await?;
            if as_json {
                json(&runs);
            } else {
                println!(
                    "{:<38} {:<11} {:<9} {:<26} {:>9} {:>7}",
                    "run", "status", "trigger", "started", "duration", "cached"
                );
                for r in runs {
                    println!(
                        "{:<38} {:<11} {:<9} {:<26} {:>9} {:>7}{}",
                        r.run_id,
                        r.status,
                        r.trigger.unwrap_or_default(),
                        r.started_at.unwrap_or_default(),
                        r.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
                        format!("{}/{}", r.nodes_cached, r.nodes_total),
                        r.note.map(|n| format!("  ({n})")).unwrap_or_default()
                    );
                }
            }
        }
        InspectCommand::Run { run, pipeline } => {
            let r = b.find(&run, pipeline.as_deref()).await?;
            let m = b.run(&r).await?;
            if as_json {
                json(&m);
            } else {
                println!(
                    "run {} of pipeline {}: {} (attempt {}, trigger {}), {} → {}, {} ms",
                    m.run_id,
                    m.pipeline_id,
                    m.status.name(),
                    m.attempt,
                    m.trigger.kind,
                    m.started_at,
                    m.finished_at,
                    m.duration_ms
                );
                if let Some(e) = &m.error {
                    println!("error: {e}");
                }
                println!(
                    "{:<20} {:<10} {:<18} {:>10} {:>9} {:<6} error",
                    "node", "status", "reason", "rows", "time", "cache"
                );
                for n in &m.nodes {
                    println!(
                        "{:<20} {:<10} {:<18} {:>10} {:>9} {:<6} {}",
                        n.node_id,
                        n.status.name(),
                        n.reason.clone().unwrap_or_default(),
                        n.rows.map(|r| r.to_string()).unwrap_or_default(),
                        n.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
                        if n.cache_hit { "hit" } else { "" },
                        n.error.clone().unwrap_or_default()
                    );
                }
            }
        }
        InspectCommand::Output {
            run,
            output,
            rows,
            pipeline,
        } => {
            let r = b.find(&run, pipeline.as_deref()).await?;
            let v = b.output(&r, &output, rows.min(MAX_ROWS)).await?;
            if as_json {
                json(&v);
            } else {
                println!(
                    "output {} of run {}: {} rows",
                    v.output, r.run_id, v.metadata["rows"]
                );
                for c in v.schema["columns"].as_array().into_iter().flatten() {
                    println!(
                        "  {}: {}{}",
                        c["name"].as_str().unwrap_or(""),
                        c["dtype"],
                        if c["nullable"] == true {
                            " (nullable)"
                        } else {
                            ""
                        }
                    );
                }
                for row in v.rows.as_array().into_iter().flatten() {
                    println!("{row}");
                }
            }
        }
        InspectCommand::Picture {
            run,
            file,
            format,
            out,
        } => {
            picture(b, run, file, &format, out).await?;
        }
        InspectCommand::Lineage {
            run,
            output,
            column,
        } => {
            super::lineage::columns_view(b, &run, &output, column.as_deref(), as_json).await?;
        }
        InspectCommand::Diff {
            run_a,
            run_b,
            key,
            rows,
        } => {
            let a = b.find(&run_a, None).await?;
            let bb = b.find(&run_b, None).await?;
            let d = diff::diff(b, &a, &bb, &key, rows.min(MAX_ROWS)).await?;
            if as_json {
                json(&d);
            } else {
                print_diff(&d);
            }
        }
    }
    Ok(())
}

async fn picture(
    b: &Bucket,
    run: Option<String>,
    file: Option<PathBuf>,
    format: &str,
    out: Option<PathBuf>,
) -> Result<(), InspectError> {
    if !["dot", "mermaid", "svg", "png"].contains(&format) {
        return Err(InspectError::Data(format!(
            "--format {format} is not one of dot, mermaid, svg, png"
        )));
    }
    let (definition, meta, lineage) = match (run, file) {
        (Some(run), _) => {
            let r = b.find(&run, None).await?;
            let m = b.run(&r).await?;
            let l: Option<crate::model::Lineage> =
                b.json(&format!("{}lineage.json", r.prefix())).await?;
            (m.definition.clone(), Some(m), l)
        }
        (None, Some(f)) => {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| InspectError::Data(format!("cannot read {}: {e}", f.display())))?;
            let v = serde_json::from_str(&text).map_err(|e| InspectError::Damaged {
                file: f.display().to_string(),
                reason: e.to_string(),
            })?;
            (v, None, None)
        }
        (None, None) => {
            return Err(InspectError::Data(
                "name a run, or a pipeline with --file".into(),
            ));
        }
    };
    let (pipeline, _) =
        validate::validate(definition, validate::Options::default()).map_err(|r| {
            InspectError::Data(format!(
                "the pipeline does not validate ({} problem(s)); `mudrock validate` lists them",
                r.errors().count()
            ))
        })?;
    let pic = picture_of(&pipeline, meta.as_ref(), lineage.as_ref());
    let bytes = match format {
        "dot" => pic.dot().into_bytes(),
        "mermaid" => pic.mermaid().into_bytes(),
        f => crate::inspect::picture::render(&pic.dot(), f).map_err(InspectError::Data)?,
    };
    match out {
        Some(p) => std::fs::write(&p, bytes)
            .map_err(|e| InspectError::Data(format!("cannot write {}: {e}", p.display())))?,
        None => {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(&bytes);
        }
    }
    Ok(())
}

fn picture_of<'a>(
    pipeline: &'a crate::model::pipeline::Pipeline,
    run: Option<&'a crate::model::RunMeta>,
    lineage: Option<&'a crate::model::Lineage>,
) -> crate::inspect::picture::Picture<'a> {
    crate::inspect::picture::Picture {
        pipeline,
        run,
        lineage,
    }
}

fn print_diff(d: &diff::RunDiff) {
    println!("diff {} → {}", d.a, d.b);
    if let Some(n) = &d.note {
        println!("note: {n}");
    }
    for (what, list) in [
        ("nodes added", &d.nodes_added),
        ("nodes removed", &d.nodes_removed),
        ("nodes changed", &d.nodes_changed),
        ("cache keys changed", &d.cache_keys_changed),
    ] {
        if !list.is_empty() {
            println!("{what}: {}", list.join(", "));
        }
    }
    for o in &d.outputs {
        let rows = |r: Option<u64>| r.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "output {}: {} rows → {} rows, {}",
            o.output,
            rows(o.rows_a),
            rows(o.rows_b),
            if o.identical { "identical" } else { "changed" }
        );
        for (what, list) in [
            ("columns added", &o.columns_added),
            ("columns removed", &o.columns_removed),
            ("columns retyped", &o.columns_retyped),
        ] {
            if !list.is_empty() {
                println!("  {what}: {}", list.join(", "));
            }
        }
        if let Some(n) = &o.rows_note {
            println!("  {n}");
        }
        if let Some(r) = &o.rows {
            println!(
                "  by {}: {} added, {} removed, {} changed",
                r.key.join(", "),
                r.added,
                r.removed,
                r.changed
            );
            for (what, v) in [
                ("+", &r.added_rows),
                ("-", &r.removed_rows),
                ("~", &r.changed_rows),
            ] {
                for row in v.as_array().into_iter().flatten() {
                    println!("  {what} {row}");
                }
            }
        }
    }
}
