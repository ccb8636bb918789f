//! A unit whose root could not write its scratch file: the node's failure
//! (over the scratch budget: a limit; the disk refused: internal).

use super::*;

/// What a unit root's scratch file is, for the scratch budget's message.
pub(super) fn what_of(p: &Pipeline, root: usize) -> String {
    format!("the result of node \"{}\"", p.nodes[root].id)
}

/// The root failed writing its scratch file: over the scratch budget (a
/// limit) or the disk refused (internal).
pub(super) fn storage_failure(
    mut outcomes: Vec<(usize, MemberOutcome)>,
    root: usize,
    msg: String,
) -> Computed {
    let kind = if mudrock_operators::limits::is_limit_message(&msg) {
        NodeErrorKind::Limit
    } else {
        NodeErrorKind::Internal
    };
    for (m, o) in &mut outcomes {
        if *m == root {
            o.status = NodeStatus::Failed;
            o.error = Some(NodeError::new(kind.clone(), msg.clone()));
        }
    }
    Computed::without_result(outcomes)
}
