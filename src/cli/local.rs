//! Commands on the embedded default, no database: `validate`, `plan`,
//! `run` and `upload`.

use super::*;

pub(super) async fn validate_cmd(a: ValidateArgs, config: Config) -> i32 {
    let (pipeline, report) = match load(&a.file, a.strict, a.json, config.limits) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut diags = report.diagnostics.clone();
    if a.data || a.store.store.is_some() {
        let config = effective(config, &a.store);
        let store = match open(&config).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        let pipeline = Arc::new(pipeline);
        let opts = options(&pipeline, &config, &a.store);
        match plan::plan(store.as_ref(), pipeline.clone(), &opts).await {
            Ok(p) => diags.extend(p.problems),
            Err(e) => {
                eprintln!("error: {e}");
                return 3;
            }
        }
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == validate::Severity::Error)
        .count();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"valid": errors == 0, "diagnostics": diags})
            )
            .unwrap()
        );
    } else {
        for d in &diags {
            eprintln!("{d}");
        }
        if errors == 0 {
            println!("{}: valid ({} warning(s))", a.file.display(), diags.len());
        } else {
            eprintln!("{} ({errors} error(s))", a.file.display());
        }
    }
    if errors == 0 { 0 } else { 2 }
}

pub(super) async fn plan_cmd(a: PlanArgs, config: Config) -> i32 {
    let (pipeline, report) = match load(&a.file, a.strict, a.json, config.limits) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let pipeline = Arc::new(pipeline);
    let config = effective(config, &a.store);
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let opts = options(&pipeline, &config, &a.store);
    let plan = match plan::plan(store.as_ref(), pipeline.clone(), &opts).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&plan).unwrap());
    } else {
        for d in report.warnings() {
            eprintln!("{d}");
        }
        println!("plan for {} (bucket {})", plan.pipeline_id, opts.bucket);
        println!(
            "{:<4} {:<24} {:<10} {:<12} {:<6} key",
            "#", "node", "type", "operator", "cache"
        );
        for (k, n) in plan.order.iter().enumerate() {
            let cache = match (&n.skip, n.cache_hit, n.materialized) {
                (Some(_), _, _) => "skip",
                (None, true, _) => "hit",
                (None, false, true) => "miss",
                (None, false, false) => "fused",
            };
            let key = n.cache_key.as_deref().map(|k| &k[..12]).unwrap_or("-");
            println!(
                "{:<4} {:<24} {:<10} {:<12} {:<6} {key}",
                k + 1,
                n.node_id,
                n.node_type,
                n.operator.as_deref().unwrap_or("-"),
                cache
            );
        }
        for o in &plan.outputs {
            println!("\noutput {}:", o.node_id);
            for c in &o.columns {
                println!("  {:<28} {}", c.name, c.dtype);
            }
        }
        for d in &plan.problems {
            eprintln!("{d}");
        }
    }
    if plan
        .problems
        .iter()
        .any(|d| d.severity == validate::Severity::Error)
    {
        2
    } else {
        0
    }
}

pub(super) async fn run(a: RunArgs, config: Config) -> i32 {
    let (pipeline, report) = match load(&a.file, a.strict, a.json, config.limits) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if !a.json {
        for d in report.warnings() {
            eprintln!("{d}");
        }
    }
    let pipeline = Arc::new(pipeline);
    let config = effective(config, &a.store);
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut opts = options(&pipeline, &config, &a.store);
    opts.use_cache = !a.no_cache;
    if let Some(n) = a.concurrency {
        opts.concurrency = n;
    }
    if let Some(m) = a.streaming {
        opts.streaming = m;
    }
    if let Some(id) = &a.run_id {
        if !validate::valid_id(id) {
            eprintln!("error: invalid --run-id \"{id}\"");
            return 2;
        }
        opts.run_id = id.clone();
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    opts.events = Some(tx);
    let cancel = opts.cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("cancelling after the running nodes finish (ctrl-c again to abort)");
            cancel.cancel();
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        }
    });
    let show_progress = !a.json && std::io::stderr().is_terminal();
    let progress = tokio::spawn(progress_display(rx, pipeline.clone(), show_progress));
    let engine = config.engine(store.clone());
    let bucket = opts.bucket.clone();
    // The engine holds the only event sender: the display ends with the run.
    let result = engine.run(pipeline, opts).await;
    let _ = progress.await;
    match result {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r.meta).unwrap());
            } else {
                print_summary(&r.meta);
                println!("artifacts: {}", location(&config, &bucket, &r.run_prefix));
            }
            emit_lineage(&config, store, &bucket, &r.meta).await;
            match r.meta.status {
                RunStatus::Succeeded => 0,
                _ => 1,
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            3
        }
    }
}

/// With `[lineage] url` set: the run's OpenLineage events, sent before
/// the command returns. A failure is a warning; the run's outcome stands.
async fn emit_lineage(
    config: &Config,
    store: std::sync::Arc<dyn crate::store::ObjectStore>,
    bucket: &str,
    meta: &crate::model::RunMeta,
) {
    let emitter = match crate::service::lineage_sink::Emitter::from_config(&config.lineage) {
        Ok(Some(e)) => e,
        Ok(None) => return,
        Err(e) => {
            eprintln!("warning: {e}");
            return;
        }
    };
    let b = crate::inspect::Bucket {
        store,
        name: bucket.to_string(),
    };
    let run = crate::inspect::RunRef {
        pipeline_id: meta.pipeline_id.clone(),
        run_id: meta.run_id.clone(),
    };
    let sent = match crate::inspect::openlineage::for_run(&b, &run).await {
        Ok(events) => emitter.send_all(&events).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        eprintln!("warning: openlineage events not sent: {e}");
    }
}

/// Files under `path` with the key each gets below `prefix`.
pub(super) fn upload_list(
    path: &std::path::Path,
    prefix: &str,
) -> std::io::Result<Vec<(PathBuf, String)>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.is_file() {
        return Ok(vec![(path.to_path_buf(), format!("{prefix}{name}"))]);
    }
    // A directory's contents go straight under the prefix (like `cp dir/.`).
    let mut out = Vec::new();
    let mut stack = vec![(path.to_path_buf(), prefix.to_string())];
    while let Some((dir, pre)) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() {
                stack.push((entry.path(), format!("{pre}{name}/")));
            } else {
                out.push((entry.path(), format!("{pre}{name}")));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

pub(super) async fn upload_cmd(a: UploadArgs, config: Config) -> i32 {
    let config = effective(config, &a.store);
    let prefix = if a.to.is_empty() || a.to.ends_with('/') {
        a.to.clone()
    } else {
        format!("{}/", a.to)
    };
    if let Err(e) = crate::validate::check_source_key(&format!("{prefix}x")) {
        eprintln!("error: --to: {e}");
        return 2;
    }
    let store = match open(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let bucket = config.bucket(a.store.project.as_deref());
    if let Err(e) = store.create_bucket(&bucket).await {
        eprintln!("error: {e}");
        return 3;
    }
    for p in &a.paths {
        let files = match upload_list(p, &prefix) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {}: {e}", p.display());
                return 2;
            }
        };
        for (path, key) in files {
            match store.put_file(&bucket, &key, &path).await {
                Ok(m) => println!(
                    "{} -> {} ({} bytes)",
                    path.display(),
                    location(&config, &bucket, &key),
                    m.size
                ),
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return 3;
                }
            }
        }
    }
    0
}
