//! `broadcast_join`: a join whose one side is small sends that side whole to every function
//! of the other side instead of shuffling both.
//!
//! A side is small when it holds at most [`BROADCAST_MAX_BYTES`] and a tenth of the other
//! side: then copying it to every function moves less than shuffling the large side would.
//! Only a side whose unmatched rows the join drops can be broadcast (the right side of an
//! inner, left, semi or anti join; the left side of an inner or right join).

use super::{Planning, Rule};
use crate::ops::OpKind;
use crate::options::PlanError;
use crate::physical::Pattern;

/// The largest side broadcast: Spark's default threshold is 10 MB on clusters; functions
/// hold a copy each and fetch it once, so a few times that still pays.
pub const BROADCAST_MAX_BYTES: f64 = 32e6;

pub struct BroadcastJoin;

impl Rule for BroadcastJoin {
    fn name(&self) -> &'static str {
        "broadcast_join"
    }

    fn apply(&self, p: &mut Planning) -> Result<(), PlanError> {
        for (id, op) in p.graph.ops.iter().enumerate() {
            let OpKind::Join { join, .. } = &op.kind else {
                continue;
            };
            if op.inputs.len() != 2 || p.cuts[id] != [Some(Pattern::HashShuffle); 2] {
                continue;
            }
            let left = p.sizes[op.inputs[0]].bytes;
            let right = p.sizes[op.inputs[1]].bytes;
            let small = |side: f64, other: f64| side <= BROADCAST_MAX_BYTES && side * 10.0 <= other;
            let right_ok = matches!(
                join.as_str(),
                "Inner" | "Left" | "LeftSemi" | "LeftAnti" | "LeftMark"
            );
            let left_ok = matches!(join.as_str(), "Inner" | "Right" | "RightSemi" | "RightAnti");
            if right_ok && small(right, left) && (right <= left || !left_ok) {
                p.cuts[id] = vec![None, Some(Pattern::Broadcast)];
            } else if left_ok && small(left, right) {
                p.cuts[id] = vec![Some(Pattern::Broadcast), None];
            }
        }
        Ok(())
    }
}
