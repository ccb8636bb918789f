//! Where each member of a unit stands when one of them fails: the failing
//! node, those downstream of it (skipped), and those upstream or beside it
//! (fine, but never materialised alone).

use super::*;

/// Where a member stands relative to the node that failed in its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Failed,
    /// Downstream of the failure: skipped (`upstream_failed`).
    Below,
    /// Upstream of it or beside it: fine, but never materialised alone.
    Above,
}

/// Roles of the running members, in topological order, when `at` fails.
pub(super) fn roles(p: &Pipeline, running: &[usize], at: usize) -> Vec<(usize, Role)> {
    let mut failed_or_below = vec![at];
    running
        .iter()
        .map(|&m| {
            let role = if m == at {
                Role::Failed
            } else if p.inputs(m).any(|e| failed_or_below.contains(&e.source)) {
                failed_or_below.push(m);
                Role::Below
            } else {
                Role::Above
            };
            (m, role)
        })
        .collect()
}
