//! The blocking Polars part of a unit: build every member, collect (or
//! stream into Parquet) the root, find the failing member, run asserts and
//! write the root's Parquet and export files into scratch.

use mudrock_operators::limits;

use super::*;

/// What the blocking part of a unit produced.
pub(super) struct Computed {
    pub(super) members: Vec<(usize, MemberOutcome)>,
    /// The root's result; None when it failed or was streamed to a file.
    pub(super) df: Option<DataFrame>,
    /// The root's row count when it has data.
    pub(super) rows: Option<u64>,
    pub(super) conditions: BTreeMap<String, Result<bool, String>>,
    pub(super) written: Option<Written>,
    /// The fan-out source whose joint query computed this unit.
    pub(super) computed_with: Option<usize>,
}

impl Computed {
    /// The members' outcomes when the root has no result (it failed, or
    /// did not build).
    pub(super) fn without_result(members: Vec<(usize, MemberOutcome)>) -> Self {
        Computed {
            members,
            df: None,
            rows: None,
            conditions: BTreeMap::new(),
            written: None,
            computed_with: None,
        }
    }
}

pub(super) struct MemberOutcome {
    pub(super) status: NodeStatus,
    pub(super) reason: Option<&'static str>,
    pub(super) rows: Option<u64>,
    pub(super) error: Option<NodeError>,
}

pub(super) struct Written {
    pub(super) path: PathBuf,
    pub(super) parquet: WrittenParquet,
    pub(super) export: Option<(PathBuf, ExportRecord)>,
}

pub(super) fn compute(
    ctx: &Ctx,
    root: usize,
    running: &[usize],
    ready: HashMap<usize, Ready>,
    error_frames: HashMap<usize, DataFrame>,
    sources: HashMap<usize, (SourceData, Vec<String>)>,
    write: bool,
    streaming: bool,
    limits: &mudrock_operators::Limits,
) -> Computed {
    let p = &ctx.pipeline;
    // Computed already, with the fan-out source this unit reads (fanout.rs).
    let precomputed = ready.iter().find_map(|(&source, r)| match r {
        Ready::Shared(s) => s.take(root).map(|df| (source, df)),
        _ => None,
    });
    let computed_with = precomputed.as_ref().map(|(s, _)| *s);
    let precomputed = precomputed.map(|(_, df)| df);
    let mut frames: HashMap<usize, (LazyFrame, SchemaRef)> = HashMap::new();
    // One pair of plan arenas for the unit (see `build::SchemaOf`).
    let (mut lp_arena, mut expr_arena) = (Default::default(), Default::default());
    let mut schema_of = |lf: &mut LazyFrame| lf.schema_with_arenas(&mut lp_arena, &mut expr_arena);
    let mut outcomes: Vec<(usize, MemberOutcome)> = Vec::new();
    let ok = |rows| MemberOutcome {
        status: NodeStatus::Succeeded,
        reason: None,
        rows,
        error: None,
    };
    let fail = |e: NodeError| MemberOutcome {
        status: NodeStatus::Failed,
        reason: None,
        rows: None,
        error: Some(e),
    };
    let skip = || MemberOutcome {
        status: NodeStatus::Skipped,
        reason: Some("upstream_failed"),
        rows: None,
        error: None,
    };

    // Build every member; a member whose input failed to build is skipped.
    let mut broken: Vec<usize> = Vec::new();
    let mut on_streaming = HashMap::new();
    for &m in running {
        if p.inputs(m).any(|e| broken.contains(&e.source)) {
            broken.push(m);
            outcomes.push((m, skip()));
            continue;
        }
        let mut inputs = Vec::new();
        let mut input_err = None;
        for e in p.inputs(m) {
            let name = p.nodes[e.source].id.clone();
            let (frame, schema) = if let Some((lf, s)) = frames.get(&e.source) {
                (lf.clone(), s.clone())
            } else if let Some(df) = error_frames.get(&e.source) {
                (df.clone().lazy(), df.schema().clone())
            } else if let Some(r) = ready.get(&e.source) {
                match r
                    .lazy()
                    .and_then(|mut lf| lf.collect_schema().map(|s| (lf, s)))
                {
                    Ok(x) => x,
                    Err(err) => {
                        input_err = Some(NodeError::new(
                            NodeErrorKind::Data,
                            format!("reading input \"{name}\": {err}"),
                        ));
                        break;
                    }
                }
            } else {
                input_err = Some(NodeError::new(
                    NodeErrorKind::Internal,
                    format!("input \"{name}\" has no data"),
                ));
                break;
            };
            inputs.push(Input {
                name,
                frame,
                schema,
            });
        }
        same_bytes::record(&mut on_streaming, p, m, &inputs, limits);
        let built = match input_err {
            Some(e) => Err(e),
            None => build_node(
                &p.nodes[m],
                inputs,
                sources.get(&m).map(|(d, _)| d),
                &mut schema_of,
                limits,
            ),
        };
        match built {
            Ok(x) => {
                frames.insert(m, x);
            }
            Err(e) => {
                broken.push(m);
                outcomes.push((m, fail(e)));
            }
        }
    }
    ctx.columns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(
            frames
                .iter()
                .map(|(m, (_, s))| (*m, s.iter_names().map(|n| n.to_string()).collect())),
        );
    let Some((root_lf, _)) = frames.get(&root).cloned() else {
        // The root did not build: members that did are fine but unused.
        for &m in running {
            if frames.contains_key(&m) && !outcomes.iter().any(|(x, _)| *x == m) {
                outcomes.push((m, ok(None)));
            }
        }
        return Computed::without_result(outcomes);
    };

    let same = !streaming
        && ctx.opts.streaming == Streaming::Auto
        && same_bytes::on_streaming(p, running, root, &on_streaming);
    if same {
        tracing::debug!(node = %p.nodes[root].id, "unit on the streaming engine: same bytes either way");
    }
    let streaming = streaming || same;
    let engine = if streaming {
        polars::prelude::Engine::Streaming
    } else {
        polars::prelude::Engine::InMemory
    };
    let collect = |lf: LazyFrame| lf.collect_with_engine(engine).map(|r| r.unwrap_single());
    // Where the root's Parquet goes when it is written.
    let path = ctx.scratch_file(&format!("{}.parquet", p.nodes[root].id));
    // An output with nothing downstream and no export, on the streaming
    // engine, is streamed straight into its Parquet file: the result is
    // never whole in memory.
    let sink = match &p.nodes[root].kind {
        NodeKind::Output(c)
            if precomputed.is_none()
                && streaming
                && write
                && c.export.is_none()
                && p.outputs(root).next().is_none() =>
        {
            Some(c.compression)
        }
        _ => None,
    };
    let collected = match sink {
        Some(compression) => match sink_parquet(root_lf, &path, compression) {
            Sunk::Written(parquet, rows) => {
                for &m in running {
                    outcomes.push((m, ok((m == root).then_some(rows))));
                }
                if let Err(m) = ctx.budget.charge(parquet.bytes, &what_of(p, root)) {
                    return storage_failure(outcomes, root, m);
                }
                return Computed {
                    members: outcomes,
                    df: None,
                    rows: Some(rows),
                    conditions: BTreeMap::new(),
                    written: Some(Written {
                        path,
                        parquet,
                        export: None,
                    }),
                    computed_with: None,
                };
            }
            Sunk::Query(e) => Err(e),
            Sunk::File(msg) => {
                for &m in running {
                    outcomes.push((m, ok(None)));
                }
                return storage_failure(outcomes, root, msg);
            }
        },
        None => match precomputed {
            Some(df) => Ok(df),
            None => collect(root_lf),
        },
    };
    // Collect the root; on failure find the member that fails.
    let mut df = match collected {
        Ok(df) => df,
        Err(e) => {
            // The failing member and its error (None: the first one). A
            // join's row counter counted the failed collection too: an
            // over-the-limit error now is a member's only if it was then,
            // and the first count is the one to report.
            let mut culprit: Option<(usize, Option<PolarsError>)> = None;
            let over = |e: &PolarsError| limits::is_limit_message(&e.to_string());
            let root_over = over(&e);
            if running.len() > 1 {
                for &m in running {
                    if m == root {
                        break;
                    }
                    match collect(frames[&m].0.clone()) {
                        Err(again) if root_over && over(&again) => culprit = Some((m, None)),
                        Err(again) if !over(&again) => culprit = Some((m, Some(again))),
                        _ => continue,
                    }
                    break;
                }
            }
            let (at, e) = match culprit {
                Some((m, again)) => (m, again.unwrap_or(e)),
                None => (root, e),
            };
            let mut message = build::clean_polars(&e.to_string());
            if let Some((data, keys)) = sources.get(&at) {
                if let NodeKind::Ingestion(cfg) = &p.nodes[at].kind {
                    if let Some((key, msg)) = ingest::culprit(cfg, data, keys) {
                        message = format!("{key}: {}", build::clean_polars(&msg));
                    }
                }
            }
            for (m, role) in roles(p, running, at) {
                // Members that failed to build are already recorded.
                if outcomes.iter().any(|(x, _)| *x == m) {
                    continue;
                }
                let o = match role {
                    Role::Failed => fail(NodeError::from_polars(&message)),
                    Role::Below => skip(),
                    Role::Above => ok(None),
                };
                outcomes.push((m, o));
            }
            return Computed::without_result(outcomes);
        }
    };
    let rows = df.height() as u64;
    // Asserts look at the data.
    if let NodeKind::Operator { op, .. } = &p.nodes[root].kind {
        if op.needs_check() {
            if let Err(e) = op.check(&df) {
                for &m in running {
                    if m != root {
                        outcomes.push((m, ok(None)));
                    }
                }
                outcomes.push((root, fail(build::op_error(&p.nodes[root], e))));
                return Computed::without_result(outcomes);
            }
        }
    }
    for &m in running {
        outcomes.push((m, ok(if m == root { Some(rows) } else { None })));
    }
    let mut conditions = BTreeMap::new();
    for e in p.outputs(root) {
        if let EdgeKind::Conditional(c) = &e.kind {
            conditions
                .entry(c.clone())
                .or_insert_with(|| mudrock_operators::sqlutil::eval_bool(df.clone().lazy(), c));
        }
    }
    let written = if write {
        let compression = match &p.nodes[root].kind {
            NodeKind::Output(c) => c.compression,
            _ => crate::model::pipeline::Compression::Zstd,
        };
        match write_parquet(&mut df, &path, compression).and_then(|parquet| {
            ctx.budget.charge(parquet.bytes, &what_of(p, root))?;
            Ok(parquet)
        }) {
            Ok(parquet) => {
                let export = match &p.nodes[root].kind {
                    NodeKind::Output(c) => c.export.as_ref().map(|x| {
                        let format = Format::from_extension(x).unwrap_or(Format::Csv);
                        let xp = ctx.scratch_file(&format!(
                            "{}.export.{}",
                            p.nodes[root].id,
                            format.name()
                        ));
                        write_export(&mut df, &xp, format, compression).and_then(|bytes| {
                            ctx.budget.charge(bytes, &format!("export \"{x}\""))?;
                            let blake3 = cache::hash_file(&xp).map_err(|e| e.to_string())?;
                            Ok((
                                xp,
                                ExportRecord {
                                    key: x.clone(),
                                    format: format.name().into(),
                                    bytes,
                                    blake3,
                                    cache_file: format!("export.{}", format.name()),
                                },
                            ))
                        })
                    }),
                    _ => None,
                };
                match export.transpose() {
                    Ok(export) => Some(Written {
                        path,
                        parquet,
                        export,
                    }),
                    Err(msg) => return storage_failure(outcomes, root, msg),
                }
            }
            Err(msg) => return storage_failure(outcomes, root, msg),
        }
    } else {
        None
    };
    Computed {
        members: outcomes,
        df: Some(df),
        rows: Some(rows),
        conditions,
        written,
        computed_with,
    }
}
