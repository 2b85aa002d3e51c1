//! Which columns of each operator's output something downstream reads. Columns nobody reads
//! never move: DataFusion's projection push-down drops them in a process and the runtime's
//! exchanges send only the columns their consumer reads, so an operator's width, and with it
//! every scan, exchange and hash table the cost model prices, counts only the columns read.
//! A scan of a columnar format reads only those columns' bytes.

use crate::ops::{OpGraph, OpId, OpKind};
use crate::stats::Statistics;
use datafusion::logical_expr::{Distinct, Expr, JoinType, LogicalPlan};
use flow_compiler::{Dag, NodeId, NodeKind, node_of_scan};
use std::collections::HashMap;

/// What lowering recorded for this pass.
#[derive(Default)]
pub(crate) struct Lowered {
    /// The operator each plan node (DAG node, path of child indices) computes or reads.
    pub at: HashMap<(usize, Vec<usize>), OpId>,
    /// The width of each field of an operator's output, for operators that are plan nodes
    /// or scans.
    pub fields: HashMap<OpId, Vec<f64>>,
    /// The operator that ends each lowered DAG node.
    pub by_node: HashMap<NodeId, OpId>,
}

/// Narrows the width of every operator whose fields are known to the columns read of it.
pub(crate) fn narrow(dag: &Dag, lowered: &Lowered, graph: &mut OpGraph, stats: &dyn Statistics) {
    let order = dag.in_order();
    let mut walk = Walk {
        dag,
        lowered,
        needed: HashMap::new(),
    };
    // Readers before what they read, so a binding's root knows every column read of it.
    for id in order.into_iter().rev() {
        let (Some(&op), Some(plan)) = (lowered.by_node.get(&id), dag.node(id).plan()) else {
            continue;
        };
        let fields = plan.schema().fields().len();
        let read_whole = dag
            .readers(id)
            .into_iter()
            .any(|reader| dag.node(reader).plan().is_none());
        let root = if read_whole {
            vec![true; fields]
        } else {
            walk.needed
                .get(&op)
                .cloned()
                .unwrap_or_else(|| vec![false; fields])
        };
        walk.plan(plan, id.index(), &mut Vec::new(), &root);
    }
    for (op, needed) in &walk.needed {
        let Some(widths) = lowered.fields.get(op) else {
            continue;
        };
        let width: f64 = widths
            .iter()
            .zip(needed)
            .filter(|(_, n)| **n)
            .map(|(w, _)| w)
            .sum();
        graph.ops[*op].width = width.max(1.0);
    }
    read_bytes(dag, lowered, graph, &walk.needed, stats);
}

/// Records on each scan the bytes of the columns read, where the format lets a scan skip
/// the others.
fn read_bytes(
    dag: &Dag,
    lowered: &Lowered,
    graph: &mut OpGraph,
    needed: &HashMap<OpId, Vec<bool>>,
    stats: &dyn Statistics,
) {
    for (id, op) in &lowered.by_node {
        let NodeKind::Source { load, .. } = &dag.node(*id).kind else {
            continue;
        };
        let Some(needed) = needed.get(op) else {
            continue;
        };
        let columns: Vec<&str> = load
            .schema
            .fields()
            .iter()
            .zip(needed)
            .filter(|(_, n)| **n)
            .map(|(f, _)| f.name().as_str())
            .collect();
        if let OpKind::Scan { read, .. } = &mut graph.ops[*op].kind {
            *read = stats.column_bytes(load, &columns);
        }
    }
}

struct Walk<'a> {
    dag: &'a Dag,
    lowered: &'a Lowered,
    /// Per operator, which fields of its output are read.
    needed: HashMap<OpId, Vec<bool>>,
}

impl Walk<'_> {
    fn mark(&mut self, op: OpId, fields: impl Iterator<Item = usize>, len: usize) {
        let needed = self.needed.entry(op).or_insert_with(|| vec![false; len]);
        for i in fields {
            if let Some(n) = needed.get_mut(i) {
                *n = true;
            }
        }
    }

    fn plan(&mut self, plan: &LogicalPlan, node: usize, path: &mut Vec<usize>, needed: &[bool]) {
        let op = self.lowered.at.get(&(node, path.clone())).copied();
        if let LogicalPlan::TableScan(scan) = plan
            && let Some(read) = node_of_scan(scan)
        {
            if let Some(op) = op {
                let len = self.fields_of(read);
                let read_fields = read_indices(needed, scan.projection.as_deref());
                self.mark(op, read_fields.into_iter(), len);
            }
            return;
        }
        if let Some(op) = op
            && !matches!(plan, LogicalPlan::SubqueryAlias(_))
        {
            self.mark(op, set(needed), needed.len());
        }
        let inputs = plan.inputs();
        let wanted = children(plan, &inputs, needed);
        for (k, (child, wanted)) in inputs.iter().zip(wanted).enumerate() {
            path.push(k);
            self.plan(child, node, path, &wanted);
            path.pop();
        }
    }

    /// Fields of the output of the DAG node `read`.
    fn fields_of(&self, read: NodeId) -> usize {
        let node = self.dag.node(read);
        match (&node.kind, node.plan()) {
            (NodeKind::Source { load, .. }, _) => load.schema.fields().len(),
            (_, Some(plan)) => plan.schema().fields().len(),
            _ => 0,
        }
    }
}

fn set(needed: &[bool]) -> impl Iterator<Item = usize> + '_ {
    needed
        .iter()
        .enumerate()
        .filter(|(_, n)| **n)
        .map(|(i, _)| i)
}

/// Fields of the node a scan reads that the scan's needed outputs are.
fn read_indices(needed: &[bool], projection: Option<&[usize]>) -> Vec<usize> {
    set(needed)
        .filter_map(|i| match projection {
            Some(p) => p.get(i).copied(),
            None => Some(i),
        })
        .collect()
}

/// Which fields of each input `plan` reads, given which of its own fields are read.
fn children(plan: &LogicalPlan, inputs: &[&LogicalPlan], needed: &[bool]) -> Vec<Vec<bool>> {
    let mut out: Vec<Vec<bool>> = inputs
        .iter()
        .map(|i| vec![false; i.schema().fields().len()])
        .collect();
    let refer = |out: &mut Vec<Vec<bool>>, expr: &Expr| {
        for column in expr.column_refs() {
            for (k, input) in inputs.iter().enumerate() {
                if let Some(i) = input.schema().maybe_index_of_column(column) {
                    out[k][i] = true;
                }
            }
        }
    };
    match plan {
        LogicalPlan::Projection(p) => {
            for (e, _) in p.expr.iter().zip(needed).filter(|(_, n)| **n) {
                refer(&mut out, e);
            }
        }
        LogicalPlan::Aggregate(_) => {
            for e in plan.expressions() {
                refer(&mut out, &e);
            }
        }
        LogicalPlan::Join(j) => {
            let left = out[0].len();
            let kept_left_only = matches!(
                j.join_type,
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark
            );
            let right_only = matches!(j.join_type, JoinType::RightSemi | JoinType::RightAnti);
            for i in set(needed) {
                match () {
                    _ if right_only => mark(&mut out[1], i),
                    _ if i < left => mark(&mut out[0], i),
                    _ if !kept_left_only => mark(&mut out[1], i - left),
                    _ => {}
                }
            }
            for e in plan.expressions() {
                refer(&mut out, &e);
            }
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::Distinct(Distinct::All(_))
            if out.iter().all(|o| o.len() == needed.len()) =>
        {
            for o in &mut out {
                o.copy_from_slice(needed);
            }
            for e in plan.expressions() {
                refer(&mut out, &e);
            }
        }
        _ => {
            for o in &mut out {
                o.fill(true);
            }
        }
    }
    out
}

fn mark(fields: &mut [bool], i: usize) {
    if let Some(f) = fields.get_mut(i) {
        *f = true;
    }
}
