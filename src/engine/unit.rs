//! One unit's lifecycle: gate, cache lookup, compute off the async
//! threads, persist, with retries of transient storage failures.

use backon::Retryable;

use super::*;

/// A unit's attempt that may be tried again, or an engine failure.
enum Attempt {
    Transient(UnitOutcome),
    Engine(EngineError),
}

/// Runs one unit, retrying transient failures (`execution.retries` times,
/// the crate's one backoff policy).
pub(super) async fn run_unit(
    ctx: Arc<Ctx>,
    root: usize,
    inputs: HashMap<usize, Finished>,
    slot: &Slot,
) -> Result<UnitOutcome, EngineError> {
    let retries = ctx.pipeline.nodes[root].execution.retries as usize;
    let once = || async {
        let out = run_unit_once(&ctx, root, &inputs, slot)
            .await
            .map_err(Attempt::Engine)?;
        let transient = out
            .nodes
            .iter()
            .any(|(_, f)| f.error.as_ref().is_some_and(|e| e.retryable));
        if transient {
            Err(Attempt::Transient(out))
        } else {
            Ok(out)
        }
    };
    let node = &ctx.pipeline.nodes[root].id;
    let out = once
        .retry(crate::retry::UNIT.times(retries))
        .when(|a| matches!(a, Attempt::Transient(_)) && !ctx.opts.cancel.is_cancelled())
        .notify(|_, wait| {
            tracing::warn!(node = %node, wait_ms = wait.as_millis() as u64, "transient failure, retrying unit");
        })
        .await;
    let out = match out {
        Ok(out) | Err(Attempt::Transient(out)) => out,
        Err(Attempt::Engine(e)) => return Err(e),
    };
    for (_, f) in &out.nodes {
        ctx.emit(Event::NodeFinished(Box::new(f.record.clone())));
    }
    Ok(out)
}

pub(super) async fn run_unit_once(
    ctx: &Arc<Ctx>,
    root: usize,
    inputs: &HashMap<usize, Finished>,
    slot: &Slot,
) -> Result<UnitOutcome, EngineError> {
    let p = &ctx.pipeline;
    let members = ctx.prep.members[&root].clone();
    let started_at = now();
    let clock = Instant::now();

    // 1. Gates, in topological order.
    let mut gates: HashMap<usize, Gate> = HashMap::new();
    for &m in &members {
        let gate = if ctx.opts.cancel.is_cancelled() {
            Gate::Skip("cancelled")
        } else if p.nodes[m].not_connected {
            Gate::Skip("not_connected")
        } else {
            gate_for(ctx, m, &gates, inputs).await
        };
        gates.insert(m, gate);
    }
    let mut results: Vec<(usize, Finished)> = Vec::new();
    let running: Vec<usize> = members
        .iter()
        .copied()
        .filter(|m| gates[m] == Gate::Run)
        .collect();
    for &m in &members {
        match &gates[&m] {
            Gate::Skip(reason) => {
                let mut r = ctx.record(m, NodeStatus::Skipped);
                r.reason = Some(reason.to_string());
                results.push((
                    m,
                    Finished {
                        record: r,
                        handle: None,
                        error: None,
                        conditions: BTreeMap::new(),
                    },
                ));
            }
            Gate::Fail(e) => {
                let mut r = ctx.record(m, NodeStatus::Failed);
                r.reason = Some(e.kind.name().into());
                r.error = Some(e.message.clone());
                r.started_at = Some(started_at.clone());
                r.duration_ms = Some(0);
                results.push((
                    m,
                    Finished {
                        record: r,
                        handle: None,
                        error: Some(e.clone()),
                        conditions: BTreeMap::new(),
                    },
                ));
            }
            Gate::Run => {}
        }
    }
    if running.is_empty() {
        return Ok(UnitOutcome {
            nodes: results,
            outputs: vec![],
        });
    }
    for &m in &running {
        ctx.emit(Event::NodeStarted {
            node_id: p.nodes[m].id.clone(),
        });
    }
    let unit = Unit {
        root,
        running: running.clone(),
        started_at: started_at.clone(),
        clock,
        decided: results.clone(),
    };

    // 2. Cache lookup for the root.
    let root_runs = gates[&root] == Gate::Run;
    if root_runs && ctx.opts.use_cache && ctx.prep.entry[root] {
        let key = ctx.prep.keys[root].clone().unwrap();
        if let Some(meta) = ctx.lookup(&key).await {
            return cached_unit(ctx, &unit, meta).await;
        }
    }

    // 2b. A fan-out source without an entry of its own is read only if a
    // consumer has to compute: a fully cached run reads no source.
    if root_runs
        && ctx.opts.use_cache
        && ctx.prep.mat[root]
        && matches!(p.nodes[root].kind, NodeKind::Ingestion(_))
        && !ctx.prep.entry[root]
        && consumers_cached(ctx, root).await
    {
        let mut results = unit.decided.clone();
        for &m in &unit.running {
            let mut r = unit.record(ctx, m, NodeStatus::Cached);
            r.reason = Some("consumers_cached".into());
            results.push((
                m,
                Finished {
                    record: r,
                    handle: (m == root).then_some(Handle::Deferred),
                    error: None,
                    conditions: BTreeMap::new(),
                },
            ));
        }
        return Ok(UnitOutcome {
            nodes: results,
            outputs: Vec::new(),
        });
    }

    // 3. Fetch what the blocking part needs: external inputs and sources.
    let mut ready: HashMap<usize, Ready> = HashMap::new();
    let mut error_frames: HashMap<usize, DataFrame> = HashMap::new();
    for &m in &running {
        for e in p.inputs(m) {
            if ctx.prep.unit_of[e.source] == root {
                continue;
            }
            let f = &inputs[&e.source];
            if e.kind == EdgeKind::Error {
                let err = f
                    .error
                    .clone()
                    .unwrap_or_else(|| NodeError::new(NodeErrorKind::Internal, "unknown"));
                error_frames.insert(
                    e.source,
                    error_frame(&ctx.opts.run_id, &p.nodes[e.source], &err, &now()),
                );
            } else if let Some(h) = &f.handle {
                if !ready.contains_key(&e.source) {
                    match ready_handle(ctx, e.source, h).await {
                        Ok(r) => {
                            ready.insert(e.source, r);
                        }
                        Err(err) => {
                            return Ok(unit.fail(ctx, err));
                        }
                    }
                }
            }
        }
    }
    let mut source_data: HashMap<usize, (SourceData, Vec<String>)> = HashMap::new();
    for &m in &running {
        if let Some(src) = &ctx.prep.sources[m] {
            match src {
                Ok(objs) => {
                    let metas: Vec<ObjectMeta> =
                        objs.iter().map(|(_, o)| ObjectMeta::from(o)).collect();
                    match ingest::fetch(ctx.store.as_ref(), &ctx.opts.bucket, &metas, &ctx.files)
                        .await
                    {
                        Ok(d) => {
                            source_data
                                .insert(m, (d, metas.iter().map(|o| o.key.clone()).collect()));
                        }
                        Err(err) => {
                            return Ok(unit.fail_at(ctx, m, err));
                        }
                    }
                }
                Err(err) => {
                    return Ok(unit.fail_at(ctx, m, err.clone()));
                }
            }
        }
    }

    // 4. Build and collect, off the async threads.
    ctx.computed.store(true, Ordering::SeqCst);
    let source_bytes: u64 = running
        .iter()
        .filter_map(|&m| ctx.prep.sources[m].as_ref())
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|objs| objs.iter().map(|(meta, _)| meta.size))
        .sum();
    let streaming = ctx.opts.streams(source_bytes, row_wise(p, &running));
    if streaming {
        tracing::debug!(node = %p.nodes[root].id, source_bytes, "unit on the streaming engine");
    }
    // 4a. A fan-out source is computed with the consumers that read only
    // it, in one query (fanout.rs); on any failure, unit by unit below.
    if root_runs && running == [root] {
        let group = fanout::group(ctx, root).await;
        if let (false, Some((data, _))) = (group.is_empty(), source_data.get(&root).cloned()) {
            let c = ctx.clone();
            let joint = tokio::task::spawn_blocking(move || {
                let _computing = c.computing.enter();
                fanout::compute(&c, root, &group, &data, source_bytes)
            })
            .await
            .map_err(|e| EngineError::Internal(format!("compute task failed: {e}")))?;
            if let Some((shared, rows)) = joint {
                let mut r = unit.record(ctx, root, NodeStatus::Succeeded);
                r.rows = Some(rows);
                results.push((
                    root,
                    Finished {
                        record: r,
                        handle: Some(Handle::Shared(shared)),
                        error: None,
                        conditions: BTreeMap::new(),
                    },
                ));
                return Ok(UnitOutcome {
                    nodes: results,
                    outputs: Vec::new(),
                });
            }
        }
    }
    let is_output = matches!(p.nodes[root].kind, NodeKind::Output(_));
    // Outputs are the run's result: written before the unit counts as done.
    // An intermediate checkpoint's cache entry is written in the background.
    let write_parquet = root_runs && is_output;
    let write_behind = root_runs && !is_output && ctx.prep.entry[root];
    let mut job = {
        let ctx = ctx.clone();
        let running = running.clone();
        tokio::task::spawn_blocking(move || {
            let _computing = ctx.computing.enter();
            off_grid::exact_or_in_order(&ctx, root, |limits| {
                compute(
                    &ctx,
                    root,
                    &running,
                    ready.clone(),
                    error_frames.clone(),
                    source_data.clone(),
                    write_parquet,
                    streaming,
                    limits,
                )
            })
        })
    };
    let timeout = running
        .iter()
        .filter_map(|&m| p.nodes[m].execution.timeout_seconds)
        .reduce(f64::min);
    let computed = match timeout {
        Some(secs) => {
            match tokio::time::timeout(std::time::Duration::from_secs_f64(secs), &mut job).await {
                Ok(j) => j,
                Err(_) => {
                    // The computation goes on until Polars returns; it keeps
                    // the unit's slot until then, and the run does not wait.
                    let permit = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                    tokio::spawn(async move {
                        let _ = job.await;
                        drop(permit);
                    });
                    let err =
                        NodeError::new(NodeErrorKind::Timeout, format!("timed out after {secs}s"));
                    return Ok(unit.fail(ctx, err));
                }
            }
        }
        None => job.await,
    }
    .map_err(|e| EngineError::Internal(format!("compute task failed: {e}")))?;

    // 5. Records, cache entry and output artifacts.
    let elapsed = clock.elapsed().as_millis() as u64;
    let mut outputs = Vec::new();
    for (m, outcome) in computed.members {
        let mut r = ctx.record(m, outcome.status);
        r.started_at = Some(started_at.clone());
        r.duration_ms = Some(elapsed);
        r.rows = outcome.rows;
        r.reason = outcome.reason.map(str::to_string);
        r.computed_with = computed.computed_with.map(|s| p.nodes[s].id.clone());
        if let Some(e) = &outcome.error {
            r.reason = Some(e.kind.name().into());
            r.error = Some(match &e.path {
                Some(path) => format!("{path}: {}", e.message),
                None => e.message.clone(),
            });
        }
        let mut f = Finished {
            record: r,
            handle: None,
            error: outcome.error,
            conditions: BTreeMap::new(),
        };
        if m == root {
            if let Some(df) = &computed.df {
                f.handle = Some(Handle::Memory(df.clone()));
                f.conditions = computed.conditions.clone();
            }
        }
        results.push((m, f));
    }
    if write_behind && let Some(df) = &computed.df {
        let ok = results
            .iter()
            .any(|(m, f)| *m == root && f.record.status.has_data());
        if ok {
            write_behind_entry(ctx, root, df.clone(), computed.conditions.clone());
        }
    }
    if let (Some(rows), Some(written)) = (computed.rows, &computed.written) {
        match persist(ctx, root, rows, written, &computed.conditions).await {
            Ok(out) => {
                let rec = &mut results
                    .iter_mut()
                    .find(|(m, _)| *m == root)
                    .unwrap()
                    .1
                    .record;
                rec.bytes = Some(written.parquet.bytes);
                outputs.extend(out);
            }
            Err(err) => {
                return Ok(unit.fail(ctx, err));
            }
        }
    }
    Ok(UnitOutcome {
        nodes: results,
        outputs,
    })
}
