//! `engine.streaming = "auto"` beyond row-wise units: a unit streams when
//! its result is the same bytes on Polars' streaming engine as in memory.
//! Each operator says what it does there for its inputs
//! (`Operator::on_streaming`); row order is carried through members that
//! keep it, lost at a join and found again at an order-free aggregate
//! (groups sorted by key, sums exact), so `csv → filter → aggregate →
//! sort` and `join → join → aggregate → sort → limit` stream while a join
//! that reaches an output unaggregated does not.

use mudrock_operators::OnStreaming;

use super::*;

/// What a member's rows are on the streaming engine; worse is greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rows {
    /// The in-memory engine's rows in its order.
    Ordered,
    /// Its rows in another order.
    Unordered,
    /// Possibly other values.
    Differs,
}

/// Records what operator member `m` says it gives streamed, from the
/// inputs it is about to be built with.
pub(super) fn record(
    ops: &mut HashMap<usize, OnStreaming>,
    p: &Pipeline,
    m: usize,
    inputs: &[Input],
    limits: &mudrock_operators::Limits,
) {
    if let NodeKind::Operator { op, .. } = &p.nodes[m].kind {
        let schemas: Vec<SchemaRef> = inputs.iter().map(|i| i.schema.clone()).collect();
        ops.insert(m, op.on_streaming(&schemas, limits));
    }
}

/// Whether `root`'s result is the same on both engines. `running` is in
/// topological order; `ops` holds each operator member's answer (a member
/// without one, say one that did not build, differs). Inputs from outside
/// the unit are materialised frames, in order.
pub(super) fn on_streaming(
    p: &Pipeline,
    running: &[usize],
    root: usize,
    ops: &HashMap<usize, OnStreaming>,
) -> bool {
    let mut rows: HashMap<usize, Rows> = HashMap::new();
    for &m in running {
        let input = p
            .inputs(m)
            .map(|e| rows.get(&e.source).copied().unwrap_or(Rows::Ordered))
            .max()
            .unwrap_or(Rows::Ordered);
        let out = match &p.nodes[m].kind {
            NodeKind::Ingestion(_) => Rows::Ordered,
            NodeKind::Output(_) => input,
            NodeKind::Operator { .. } => match (ops.get(&m), input) {
                (_, Rows::Differs) => Rows::Differs,
                (Some(OnStreaming::Ordered), input) => input,
                (Some(OnStreaming::OrderFree), _) => Rows::Ordered,
                (Some(OnStreaming::Unordered), _) => Rows::Unordered,
                (Some(OnStreaming::Differs) | None, _) => Rows::Differs,
            },
        };
        rows.insert(m, out);
    }
    rows.get(&root) == Some(&Rows::Ordered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Two sources, a join, then `rest` (id, operator config) in a chain,
    /// and an output; every node in one unit.
    fn chain(rest: &[(&str, serde_json::Value)]) -> Pipeline {
        let mut nodes = vec![
            json!({"id": "a", "nodeType": "ingestion", "config": {"source": "shared/a.csv"}}),
            json!({"id": "b", "nodeType": "ingestion", "config": {"source": "shared/b.csv"}}),
            json!({"id": "j", "nodeType": "operator", "dependencies": ["a", "b"],
                   "config": {"operator": "join", "how": "inner", "on": "k"}}),
        ];
        let mut last = "j".to_string();
        for (id, config) in rest {
            nodes.push(
                json!({"id": id, "nodeType": "operator", "dependencies": [last], "config": config}),
            );
            last = id.to_string();
        }
        nodes
            .push(json!({"id": "out", "nodeType": "output", "dependencies": [last], "config": {}}));
        let doc = json!({"id": "t", "name": "t", "nodes": nodes});
        crate::validate::validate(doc, Default::default())
            .map(|(p, _)| p)
            .unwrap_or_else(|r| panic!("{r}"))
    }

    fn streams(p: &Pipeline, says: &[(&str, OnStreaming)]) -> bool {
        let at = |id: &str| p.nodes.iter().position(|n| n.id == id).unwrap();
        let ops = says.iter().map(|(id, s)| (at(id), *s)).collect();
        let running: Vec<usize> = (0..p.nodes.len()).collect();
        on_streaming(p, &running, at("out"), &ops)
    }

    #[test]
    fn order_is_lost_at_a_join_and_found_at_an_order_free_aggregate() {
        use OnStreaming::*;
        let agg = json!({"operator": "aggregate", "by": ["k"], "aggregations": [{"name": "n", "expr": "count(*)"}]});
        let sort = json!({"operator": "sort", "by": ["k"]});
        let limit = json!({"operator": "limit", "n": 3});
        let p = chain(&[
            ("g", agg.clone()),
            ("s", sort.clone()),
            ("l", limit.clone()),
        ]);
        let says = [
            ("j", Unordered),
            ("g", OrderFree),
            ("s", Ordered),
            ("l", Ordered),
        ];
        assert!(streams(&p, &says));
        // The aggregate in one query (a float sum in no fixed order).
        let says = [
            ("j", Unordered),
            ("g", Differs),
            ("s", Ordered),
            ("l", Ordered),
        ];
        assert!(!streams(&p, &says));
        // A join's rows straight into a limit or an output.
        let p = chain(&[("l", limit)]);
        assert!(!streams(&p, &[("j", Unordered), ("l", Ordered)]));
        let p = chain(&[]);
        assert!(!streams(&p, &[("j", Unordered)]));
        // An operator that did not say (did not build) differs.
        let p = chain(&[("g", agg), ("s", sort)]);
        assert!(!streams(&p, &[("j", Unordered), ("s", Ordered)]));
        // Differs is not undone by an order-free member below it.
        assert!(!streams(
            &p,
            &[("j", Differs), ("g", OrderFree), ("s", Ordered)]
        ));
    }
}
